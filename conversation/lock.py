"""`SessionLock`: one process at a time writes a session file (an advisory file lock).

Two chats on one session would each save their own turns over the other's and write the
same `turn-NNN.png`; the second one is refused instead. The lock is the operating system's
(`flock` through filelock), so it goes away with the process that held it, even after
`kill -9`: a crash never leaves a session locked.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout
from lmd.conversation.session import SessionError


def lock_path(session_path: str | Path) -> Path:
    """Where the lock of `session_path` lives: `.NAME.lock` beside it."""
    path = Path(session_path)
    return path.with_name(f".{path.name}.lock")


class SessionLock:
    """An exclusive lock on a session file, held until `release` (or the process ends)."""

    def __init__(self, session_path: str | Path):
        self.session_path = Path(session_path)
        self._lock = FileLock(lock_path(self.session_path), timeout=0)

    def acquire(self) -> SessionLock:
        """Take the lock now or raise `SessionError`; never waits."""
        try:
            self.session_path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=0)
        except Timeout:
            raise SessionError(
                f"session file {self.session_path} is in use by another lmd chat (or an open "
                "Conversation); finish that one first, or use another session file"
            ) from None
        except OSError as e:
            raise SessionError(
                f"cannot lock session file {self.session_path}: {e.strerror or e}"
            ) from None
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

"""`BatchLock`: one `lmd batch` run at a time on a folder (an advisory file lock).

Two runs on one folder would list the same pending jobs and draw each of them twice; the
second run is refused instead. As for chat sessions (`lmd.conversation.SessionLock`), the lock
is the operating system's (`flock` through filelock), so it goes away with the process that
held it, even after `kill -9`. The processes of one run share it: only the main one takes it.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from lmd.layouts.errors import LmdError

LOCK_FILE = ".batch.lock"


class BatchInUseError(LmdError):
    """Another `lmd batch` run is drawing into the folder."""


class BatchLock:
    """An exclusive lock on a batch folder, held until `release` (or the process ends)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self._lock = FileLock(self.out_dir / LOCK_FILE, timeout=0)

    def acquire(self) -> BatchLock:
        """Take the lock now or raise `BatchInUseError`; never waits."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=0)
        except Timeout:
            raise BatchInUseError(
                f"{self.out_dir} is in use by another lmd batch run; let that one finish (a "
                "rerun then draws what is left), or use another output folder"
            ) from None
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    def __enter__(self) -> BatchLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

"""Atomic file writes: a crash mid-write leaves the previous file intact.

The new content goes to a temporary file beside the target (`.NAME.PID.RANDOM.tmpSUFFIX`),
which is renamed over the target once complete. A writer killed before the rename leaves
its temporary behind; the next write to the same target removes it (when the process that
made it is gone, or it is older than `STALE_AFTER`). New files get the permissions the umask
allows, like any other file the user creates; a file that exists keeps its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

STALE_AFTER = 3600.0
"""Seconds after which any leftover temporary of a target is removed, whoever made it."""


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.parent / f"{_prefix(path)}{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
    try:
        with contextlib.suppress(FileNotFoundError):  # an existing file keeps its mode
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_save_image(image, path: str | Path) -> Path:
    """Save a PIL image atomically; the format follows the suffix of `path`."""
    fmt = (Path(path).suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")
    return atomic_write(path, lambda p: image.save(p, format=fmt))


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove temporaries of `path` left by writers that died; returns what was removed."""
    prefix, removed = _prefix(path), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_file(follow_symlinks=False):
            continue
        kind = _temporary(entry.name[len(prefix) :], path.suffix)
        if kind is None:
            continue  # the user's own file (`.session.json.bak`), not a temporary
        pid = kind or None
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER
        except OSError:
            continue
        if old or (pid is not None and pid != os.getpid() and not _alive(pid)):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass  # another writer cleaned it first, or it is not ours to remove
    return removed


def _prefix(path: Path) -> str:
    return f".{path.name}."


def _temporary(rest: str, suffix: str) -> int | None:
    """For a name `.NAME.` + `rest`: the writer's pid if it is one of our temporaries, 0 for
    the pid-less `tempfile.mkstemp` names of earlier versions, None if it is no temporary."""
    m = re.fullmatch(rf"(\d{{1,9}})\.[0-9a-f]{{8}}\.tmp{re.escape(suffix)}", rest)
    if m:
        return int(m.group(1))
    return 0 if re.fullmatch(rf"[a-z0-9_]{{8}}{re.escape(suffix)}", rest) else None


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, safe test: leave it to the age rule
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to someone else
    return True

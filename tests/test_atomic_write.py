"""Atomic writes: temporaries of writers killed mid-write are cleaned up, the umask holds."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lmd.layouts import atomic_write_text
from lmd.layouts.io import STALE_AFTER, remove_stale_temporaries

ROOT = Path(__file__).resolve().parents[1]
# A writer that gets as far as writing half its file, then hangs until it is killed.
HANGING_WRITER = """
import sys, time
from lmd.layouts.io import atomic_write
def write(p):
    p.write_text("half")
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


def _killed_writer(target: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_WRITER, str(target)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline() == "writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and pids are POSIX")
def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "session.json"
    atomic_write_text(target, "turn 1")
    for _ in range(3):  # each writer removes what the one killed before it left
        _killed_writer(target)
        assert len(_temporaries(tmp_path)) == 1 and target.read_text() == "turn 1"
    atomic_write_text(target, "turn 2")
    assert _temporaries(tmp_path) == [] and target.read_text() == "turn 2"


@pytest.mark.skipif(os.name != "posix", reason="pids are POSIX")
def test_a_live_writers_temporary_and_the_users_own_files_are_left_alone(tmp_path):
    target = tmp_path / "turn-001.png"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".turn-001.png.{proc.pid}.0123abcd.tmp.png"
        live.write_text("in progress")
        own = tmp_path / ".turn-001.png.orig"  # not a temporary, however old
        own.write_text("mine")
        legacy = tmp_path / ".turn-001.png.k2x9_abc.png"  # tempfile.mkstemp, earlier versions
        legacy.write_text("old")
        young_legacy = tmp_path / ".turn-001.png.zzzzzzzz.png"
        young_legacy.write_text("old")
        long_ago = time.time() - STALE_AFTER - 10
        for p in (own, legacy):
            os.utime(p, (long_ago, long_ago))
        removed = remove_stale_temporaries(target)
        assert removed == [legacy]
        assert live.exists() and own.exists() and young_legacy.exists()
        os.utime(live, (long_ago, long_ago))
        assert remove_stale_temporaries(target) == [live]  # too old, whoever holds it
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.skipif(os.name != "posix", reason="umask is POSIX")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "sub" / "layout.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_an_existing_file_keeps_its_mode(tmp_path):
    path = atomic_write_text(tmp_path / "session.json", "1")
    path.chmod(0o640)
    atomic_write_text(path, "2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "2"

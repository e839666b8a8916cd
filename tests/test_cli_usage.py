"""Usage mistakes as a newcomer types them, each in a real `python -m lmd` process.

Every one prints the usage block (or one line) on stderr and exits 2, with no traceback, on
each typer release the project allows. `LMD_TEST_PYTHONS` (interpreters joined by the path
separator, e.g. virtualenvs holding the lowest and highest typer of the range) runs the same
cases under those interpreters too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = [sys.executable, *filter(None, os.environ.get("LMD_TEST_PYTHONS", "").split(os.pathsep))]
LAYOUT = '{"boxes": [], "background": "a park"}'

MISTAKES = {
    "no arguments": ([], "Missing command: one of "),
    "plan without a caption": (["plan"], "Missing argument"),
    "render without a layout": (["render"], "Missing argument"),
    "generate without -o": (["generate", "a cat"], "Missing option"),
    "unknown option": (["--frobnicate"], "--frobnicate"),
    "unknown option of a command": (["plan", "a cat", "--colour"], "--colour"),
    "unknown command": (["paint"], "No such command 'paint'"),
    "--steps 0": (["render", "LAYOUT", "-o", "out", "--steps", "0"], "--steps"),
    "--steps abc": (["render", "LAYOUT", "-o", "out", "--steps", "abc"], "--steps"),
    "--steps 5000": (["render", "LAYOUT", "-o", "out", "--steps", "5000"], "--steps"),
    "--steps without a value": (["render", "LAYOUT", "-o", "out", "--steps"], "--steps"),
    "bench without a benchmark": (["bench"], "Missing command: one of"),
    "unknown benchmark": (["bench", "accuracy"], "No such command 'accuracy'"),
}


def lmd(python: str, *args: str, cwd: Path = ROOT, timeout: float = 60):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    return subprocess.run(
        [python, "-m", "lmd", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("mistake", MISTAKES)
def test_usage_mistakes_exit_2_with_the_usage_and_no_traceback(python, mistake, tmp_path):
    args, needle = MISTAKES[mistake]
    (tmp_path / "layout.json").write_text(LAYOUT)
    args = [str(tmp_path / "layout.json") if a == "LAYOUT" else a for a in args]
    proc = lmd(python, *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.startswith("Usage: lmd") or proc.stderr.count("\n") == 1  # or one line
    assert needle in proc.stderr
    assert "Error: " in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "out").exists()
    if mistake == "no arguments":  # the error names what there is to type
        assert all(name in proc.stderr for name in ("plan", "render", "generate", "chat", "bench"))


@pytest.mark.parametrize("python", PYTHONS)
def test_version_and_help_exit_0(python):
    from lmd import __version__

    version = lmd(python, "--version")
    assert (version.returncode, version.stdout, version.stderr) == (0, f"lmd {__version__}\n", "")
    helped = lmd(python, "render", "--help")
    assert helped.returncode == 0 and "--sam-backend" in helped.stdout
    assert "--sam-checkpoint" not in helped.stdout

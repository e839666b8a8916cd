"""Real processes and real signals: Ctrl-C exits 130, and the chat prompt edits lines.

Each test starts `python -m lmd` and talks to it the way a terminal would: SIGINT for Ctrl-C,
a pseudo-terminal for the readline test.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def start(*args: str, tmp_path: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LMD_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.Popen(
        [sys.executable, "-m", "lmd", *args], cwd=tmp_path, env=env, text=True, **kwargs
    )


def lines_of(stream) -> queue.Queue:
    """The stream's lines as they come, read by a thread (so a test can wait with a timeout)."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for(lines: queue.Queue, needle: str, timeout: float = 120) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never came; got {seen}")


def test_ctrl_c_at_the_chat_prompt_exits_130(tmp_path):
    proc = start("chat", "-o", "c", "--model", "random:tiny", tmp_path=tmp_path,
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        err = lines_of(proc.stderr)
        wait_for(err, "new session")
        time.sleep(0.3)  # now blocked reading the next request
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        proc.kill()
    rest = "".join(iter(lambda: err.get(timeout=5) or "", ""))
    assert "Traceback" not in rest
    assert "nothing drawn, so no session was saved" in rest


@pytest.mark.slow
def test_ctrl_c_during_a_render_exits_130(tmp_path):
    (tmp_path / "layout.json").write_text(
        '{"boxes": [{"name": "a cat", "x": 40, "y": 40, "w": 200, "h": 200}], "background": "a"}'
    )
    proc = start("render", "layout.json", "-o", "out", "--model", "random:tiny", "--steps", "900",
                 "--no-sam", tmp_path=tmp_path, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)  # fmt: skip
    try:
        err = lines_of(proc.stderr)
        wait_for(err, "loading model random:tiny")
        time.sleep(6)  # the tiny model loads in about a second; then it renders for minutes
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        proc.kill()
    rest = "".join(iter(lambda: err.get(timeout=5) or "", ""))
    assert "Traceback" not in rest and "interrupted" in rest
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_the_chat_prompt_has_line_editing_and_history(tmp_path):
    import pty

    pytest.importorskip("readline")
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LMD_CACHE_DIR": str(tmp_path / "cache"),
           "TERM": "xterm", "INPUTRC": os.devnull}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmd", "chat", "-o", "c", "--model", "random:tiny"],
        cwd=tmp_path, env=env, stdin=follower, stdout=follower, stderr=subprocess.PIPE,
        close_fds=True,
    )  # fmt: skip
    os.close(follower)
    screen = b""

    def read_more(deadline: float) -> bool:
        """Read what the process wrote; False once it has closed the terminal."""
        nonlocal screen
        assert time.monotonic() < deadline, f"timed out; the screen so far: {screen!r}"
        if select.select([leader], [], [], 0.5)[0]:
            try:
                screen += os.read(leader, 4096)
            except OSError:  # the process closed the terminal
                return False
        return True

    def until(needle: bytes, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while screen.count(needle) < count:
            read_more(deadline)

    try:
        until(b"lmd> ")
        os.write(leader, b"/layout\r")
        until(b"no layout yet")
        os.write(leader, b"/lay\x7f\x7f\x7fhelp\r")  # backspace edits the line
        until(b"/undo         go back one turn")
        os.write(leader, b"\x1b[A\x1b[A\r")  # Up twice: /layout again, from the history
        until(b"no layout yet", count=2)
        deadline = time.monotonic() + 60
        while screen.rfind(b"lmd> ") < screen.rfind(b"no layout yet"):  # the prompt is back
            read_more(deadline)
        os.write(leader, b"\x04")  # Ctrl-D: end of input
        deadline = time.monotonic() + 120
        while read_more(deadline) and proc.poll() is None:
            pass
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        os.close(leader)
    history = (tmp_path / "cache" / "chat_history").read_text()
    assert history.split()[-3:] == ["/layout", "/help", "/layout"]

"""`lmd web` as a command: without gradio, on a non-loopback host, on a busy port, and served
for real in a subprocess (slow: it starts Python, torch and gradio afresh)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmd.cli.web import INSTALL, is_loopback
from tests.web_server import CAT_DOG, NO_GRADIO, TINY_ARGS, free_port

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_GRADIO = (
    "import sys\n"
    "class Blocker:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('gradio', 'gradio_client'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Blocker())\n"
    "from lmd.cli import run\n"
    "sys.exit(run(sys.argv[1:]))\n"
)


def lmd_without_gradio(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_GRADIO, *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_without_gradio_it_says_in_one_line_how_to_install_it():
    done = lmd_without_gradio("web", "--model", "random:tiny")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: lmd web needs gradio") and INSTALL in lines[0]
    assert "No module named 'gradio'" in lines[0]


def test_help_needs_no_gradio():
    done = lmd_without_gradio("web", "--help")
    assert done.returncode == 0, done.stderr
    assert "--host" in done.stdout and "--concurrency" in done.stdout and "--llm" in done.stdout


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("192.168.1.20", False), ("example.org", False)],
)  # fmt: skip
def test_only_loopback_hosts_count_as_private(host, loopback):
    assert is_loopback(host) is loopback


@NO_GRADIO
def test_a_network_host_warns_and_a_busy_port_is_one_error(capsys):
    from lmd.cli import run

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = run(["web", "--host", "127.0.0.1", "--port", str(port), *TINY_ARGS])
        err = capsys.readouterr().err
        assert code == 1
        assert err.strip() == (
            f"error: cannot serve on --host 127.0.0.1 --port {port} (Address already in use); "
            "pick another --port"
        )
        code = run(["web", "--host", "0.0.0.0", "--port", str(port), *TINY_ARGS])
        lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == (
        "warning: --host 0.0.0.0 lets anyone who can reach this machine use the page (and its GPU)"
    )
    assert len(lines) == 2 and lines[1].startswith("error: cannot serve on --host 0.0.0.0")


@NO_GRADIO
@pytest.mark.slow
def test_lmd_web_serves_the_page_and_stops_on_ctrl_c(llm_server, tmp_path):
    from gradio_client import Client

    llm_server.enqueue(CAT_DOG)
    port = free_port()
    env = dict(os.environ, LMD_LLM="openai/test-model", LMD_LLM_BASE_URL=llm_server.url,
               OPENAI_API_KEY="sk-test-key", LMD_CACHE_DIR=str(tmp_path / "cache"))  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "lmd", "web", "--port", str(port), "--seed", "4",
         "-o", str(tmp_path / "kept"), *TINY_ARGS],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stderr.readline()
        deadline = time.monotonic() + 180
        while "open http" not in line and time.monotonic() < deadline and server.poll() is None:
            line = server.stderr.readline()
        assert line.strip() == f"lmd web: open http://127.0.0.1:{port}/ (Ctrl+C to stop)"
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False,
                        download_files=str(tmp_path / "dl"))  # fmt: skip
        out = client.predict(words="a cat and a dog", api_name="/send")
        assert "2 objects: a grey cat, a brown dog" in out[2]
        assert Path(out[10]["value"]).name == "session.json"  # the download
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert len(llm_server.requests) == 1
    assert server.returncode == 130  # as every lmd command after Ctrl-C
    kept = list((tmp_path / "kept").glob("*/session.json"))  # -o keeps each conversation's
    assert len(kept) == 1 and '"a cat and a dog"' in kept[0].read_text()
    assert kept[0].parent.name.endswith("_a-cat-and-a-dog")  # named for what it asked


@NO_GRADIO
@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_server_removes_its_temporary_folder(tmp_path, signum, code):
    """SIGTERM (a service manager, `kill`) cleans up as Ctrl-C does: every session's pictures
    and Gradio's copies of them were in the temporary folder."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(temp), LMD_CACHE_DIR=str(tmp_path / "cache"))
    server = subprocess.Popen(
        [sys.executable, "-m", "lmd", "web", "--port", str(port), *TINY_ARGS],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        line = ""
        while "open http" not in line and time.monotonic() < deadline and server.poll() is None:
            line = server.stderr.readline()
        assert "open http" in line, line
        [folder] = temp.glob("lmd-web-*")
        cache = folder / ".gradio-cache"
        assert cache.is_dir() and (cache.stat().st_mode & 0o777) == 0o700
        server.send_signal(signum)
        assert server.wait(timeout=60) == code
    finally:
        server.kill()
    assert not folder.exists()
    assert not list(temp.glob("gradio*"))  # nothing in the system's shared Gradio folder


@NO_GRADIO
def test_sharing_options_are_checked_before_anything_is_served(capsys):
    from lmd.cli import run

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code = run(["web", "--host", "0.0.0.0", "--port", port, "--visitor-llm", *TINY_ARGS])
        lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 3
    assert lines[1] == (
        "warning: --visitor-llm lets visitors make this server send LLM requests to addresses "
        "of their choosing (with their own keys, never this server's)"
    )
    assert run(["web", "--allow-llm", "m@http://", *TINY_ARGS]) == 2
    assert "needs an http(s) URL" in capsys.readouterr().err
    assert run(["web", "--model", "random:tiny", "--steps", "200"]) == 2
    assert "200 is more than --max-steps 100" in capsys.readouterr().err
    assert run(["web", "--max-boxes", "0", *TINY_ARGS]) == 2  # the limits' own rules
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "Error: --max-boxes must be a whole number from 1 to 10000 but is 0"

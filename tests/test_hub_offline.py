"""First use without the hub: a model that is not cached, while the hub refuses connections or
never answers, is one line within seconds (not minutes of retries and a missing
`model_index.json`), saying the hub cannot be reached and how to use a local folder."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lmd.cli import run
from lmd.models import ModelLoadError, check_source


@pytest.fixture
def online(monkeypatch):
    """Hub lookups allowed (the suite runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def endpoint(url: str) -> None:  # what HF_ENDPOINT=url sets when the hub is imported
        monkeypatch.setattr(constants, "ENDPOINT", url)
        template = url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)

    return endpoint


@pytest.fixture
def refusing_port():
    """A loopback port nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port():
    """A loopback server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


def _fails_fast(model: str, limit: float) -> str:
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        check_source(model)
    assert time.monotonic() - start < limit
    return str(info.value)


def test_a_hub_that_refuses_connections_is_one_line_at_once(online, refusing_port):
    online(f"http://127.0.0.1:{refusing_port}")
    message = _fails_fast("someone/not-cached-refused", 5.0)
    assert message.startswith(
        f"model 'someone/not-cached-refused' is not in the local cache and the hub at "
        f"http://127.0.0.1:{refusing_port} cannot be reached (connection refused)"
    )
    assert "pass a local diffusers folder as `model`" in message
    assert "model_index.json" not in message


def test_a_hub_that_never_answers_is_given_up_in_bounded_time(online, silent_port, monkeypatch):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    online(f"http://127.0.0.1:{silent_port}")
    message = _fails_fast("someone/not-cached-silent", 1.0 + 1.0 + 2.0)
    assert "cannot be reached (no answer" in message and "HF_HUB_ETAG_TIMEOUT" in message


def test_the_cli_says_it_in_one_line_before_loading_anything(
    online, refusing_port, tmp_path, capsys
):
    online(f"http://127.0.0.1:{refusing_port}")
    layout = tmp_path / "cat.txt"
    layout.write_text("Objects: [('a cat', [0, 0, 100, 100])]\nBackground prompt: a park\n")
    argv = ["render", str(layout), "-o", str(tmp_path / "out"), "--model", "someone/not-cached"]
    start = time.monotonic()
    assert run(argv) == 1
    assert time.monotonic() - start < 10.0
    out, err = capsys.readouterr()
    assert err.startswith("error: model 'someone/not-cached' is not in the local cache and the hub")
    assert "--model" in err and len(err.splitlines()) == 1 and "loading model" not in err


@pytest.mark.slow
def test_hf_endpoint_refusing_as_a_user_sets_it(refusing_port, tmp_path):
    """The same through the environment, in a fresh process (`HF_ENDPOINT` is read at import)."""
    layout = tmp_path / "cat.txt"
    layout.write_text("Objects: [('a cat', [0, 0, 100, 100])]\nBackground prompt: a park\n")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{refusing_port}", HF_HOME=str(tmp_path / "hf"))
    argv = [sys.executable, "-m", "lmd", "render", str(layout), "-o", str(tmp_path / "out")]
    start = time.monotonic()
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    took = time.monotonic() - start
    assert proc.returncode == 1 and took < 60, (took, proc.stderr)
    assert proc.stderr.startswith(
        "error: model 'stable-diffusion-v1-5/stable-diffusion-v1-5' is not in the local cache "
        f"and the hub at http://127.0.0.1:{refusing_port} cannot be reached (connection refused)"
    ), proc.stderr
    assert len(proc.stderr.splitlines()) == 1

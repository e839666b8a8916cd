"""Fixtures for talking to an LLM: an OpenAI-compatible server on 127.0.0.1.

    def test_something(llm_server, make_planner):
        llm_server.enqueue("Objects: [('a cat', [0, 0, 10, 10])]\\nBackground prompt: x")
        llm_server.enqueue(500)             # an HTTP status: the next request gets it
        llm_server.default = "..."          # answer with this once the queue is empty
        planner = make_planner(max_repairs=1)   # model openai/test-model, cache in tmp_path
        planner.plan("a cat")
        llm_server.requests[-1]["messages"]     # the JSON bodies the server received

With an empty queue and no `default`, the server answers 500. `llm_server.stop()` shuts it
down (for tests that must work offline); the fixture stops it at the end anyway.

Hostile servers, for deadline tests: `Status(429, {"Retry-After": "1"})` (an error with
headers), `Trickle(text, interval)` (one byte of the answer every `interval` seconds) and
`SILENT` (reads the request, never answers).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

TEST_MODEL = "openai/test-model"
TEST_API_KEY = "sk-test-key"


@dataclass(frozen=True)
class Status:
    """An HTTP error status with extra headers (e.g. Retry-After)."""

    code: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Trickle:
    """A good answer sent one byte every `interval` seconds."""

    text: str
    interval: float = 1.0


SILENT = "<silent>"
"""Enqueue this to get a server that reads the request and never answers."""

Scripted = str | int | Status | Trickle


class ScriptedLLMServer:
    """An OpenAI-compatible chat-completions server replying from a queue of scripted replies."""

    def __init__(self) -> None:
        self.queue: deque[tuple[Scripted, float]] = deque()
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.sizes: list[int] = []  # bytes of each request body
        self.default: Scripted | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self.running = True

    def enqueue(self, *replies: Scripted, delay: float = 0.0) -> None:
        """Queue replies: text (a chat answer) or an int (that HTTP status with an error body).

        `delay` seconds pass before each of these replies is sent (to provoke timeouts).
        """
        with self._lock:
            self.queue.extend((r, delay) for r in replies)

    @property
    def messages(self) -> list[list[dict]]:
        """The `messages` of every request received, in order."""
        return [r.get("messages", []) for r in self.requests]

    def _next(self, body: dict, headers: dict, size: int) -> tuple[Scripted, float]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.sizes.append(size)
            if self.queue:
                return self.queue.popleft()
            return (self.default if self.default is not None else 500), 0.0

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._stopped.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)


def _handler_for(server: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: stop() is final

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return self._send(400, {"error": {"message": "body is not JSON"}})
            # HTTP header names are case-insensitive; clients differ in how they spell them.
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply, delay = server._next(body, headers, len(raw))
            if delay:
                time.sleep(delay)
            model = body.get("model", "test-model")
            if reply == SILENT:
                server._stopped.wait()
                return None
            if isinstance(reply, int):
                reply = Status(reply)
            if isinstance(reply, Status):
                code = reply.code
                error = {"message": f"scripted HTTP {code}", "type": "server_error", "code": code}
                return self._send(code, {"error": error}, reply.headers)
            if isinstance(reply, Trickle):
                return self._send(200, _completion(model, reply.text), interval=reply.interval)
            self._send(200, _completion(model, reply))

        def _send(
            self, status: int, payload: dict, headers: dict | None = None, interval: float = 0
        ) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
            except (BrokenPipeError, ConnectionResetError):
                return
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            # The client may have given up waiting (timeout tests).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if not interval:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    if server._stopped.wait(interval):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()

    return Handler


def _completion(model: str, text: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


@pytest.fixture
def llm_server():
    """A running `ScriptedLLMServer`; stopped after the test."""
    server = ScriptedLLMServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def warm_litellm():
    """A good and a failed request once: litellm's first calls import for seconds, which a
    test of a short deadline must not count."""
    from lmd.prompts import LLMUnavailableError, Planner

    server = ScriptedLLMServer()
    server.enqueue("Objects: []\nBackground prompt: a park", 500)
    planner = Planner(
        model=TEST_MODEL, llm_base_url=server.url, api_key=TEST_API_KEY, cache=False, max_retries=0
    )
    try:
        planner.plan("x")
        with contextlib.suppress(LLMUnavailableError):
            planner.plan("y")
    finally:
        server.stop()


@pytest.fixture
def llm_cache_dir(tmp_path):
    """A fresh folder for cached LLM replies."""
    return tmp_path / "llm-cache"


@pytest.fixture
def make_planner(llm_server, llm_cache_dir):
    """`make_planner(**overrides) -> lmd.prompts.Planner` on `llm_server`, with tiny waits."""

    def make(**kw):
        from lmd.prompts import Planner

        settings = dict(
            model=TEST_MODEL,
            llm_base_url=llm_server.url,
            api_key=TEST_API_KEY,
            cache=llm_cache_dir,
            retry_wait=0.001,
            attempt_timeout=10.0,
        )
        settings.update(kw)
        return Planner(**settings)

    return make


@pytest.fixture
def llm_env(monkeypatch, llm_server, llm_cache_dir):
    """Environment for CLI tests: LMD_LLM / LMD_LLM_BASE_URL point at `llm_server`."""
    monkeypatch.setenv("LMD_LLM", TEST_MODEL)
    monkeypatch.setenv("LMD_LLM_BASE_URL", llm_server.url)
    monkeypatch.setenv("LMD_CACHE_DIR", str(llm_cache_dir))
    monkeypatch.setenv("OPENAI_API_KEY", TEST_API_KEY)
    return llm_server

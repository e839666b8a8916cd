"""Shared pieces for the `lmd web` tests (no tests here): the app served on 127.0.0.1 with
`random:tiny` and the scripted loopback LLM server, and a client view of its outputs.

    with WebServer(tmp_path) as web:
        web.llm.enqueue(CAT_DOG)
        page = web.page()                 # a new browser session (gradio_client)
        shown = page.send("a cat and a dog")
        shown["status"], shown["table"], shown["picture_file"]
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_llm import TEST_API_KEY, TEST_MODEL, ScriptedLLMServer
from tests.test_product import CAT_DOG, DOG_MOVED  # the same LLM replies as the product tests

WEB_PACKAGES = ("gradio", "gradio_client", "gradio_image_annotation")
NO_GRADIO = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in WEB_PACKAGES),
    reason=f'{" or ".join(WEB_PACKAGES)} is not installed: pip install -e ".[web]" '
    "(the dev extra includes it)",
)

TINY_SETTINGS = dict(model="random:tiny", steps=2, sam_model="random:tiny", device="cpu")
TINY_ARGS = ["--model", "random:tiny", "--steps", "2", "--sam", "random:tiny", "--device", "cpu"]
"""The same settings as `lmd` options (so a command in the test reuses the loaded models)."""
VIEW = [
    "chat", "picture", "status", "table", "background", "negative", "canvas", "turns",
    "objects", "picture_file", "session_file", "editor",
]  # fmt: skip
"""The app's outputs as gradio_client returns them (the state and buttons are not returned)."""

__all__ = ["CAT_DOG", "DOG_MOVED", "NO_GRADIO", "TINY_ARGS", "Page", "WebServer", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_lines(chat: list[dict]) -> list[tuple[str, str]]:
    """(role, text) of each chat message as gradio_client returns them."""
    lines = []
    for message in chat:
        content = message["content"]
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content)
        lines.append((message["role"], content))
    return lines


class Page:
    """One browser session driven through gradio_client; each call returns the view by name."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, api_name: str, **inputs: Any) -> dict[str, Any]:
        out = self.client.predict(api_name=api_name, **inputs)
        names = VIEW + ["text"] if len(out) > len(VIEW) else VIEW
        shown = dict(zip(names, out, strict=True))
        shown["chat"] = chat_lines(shown["chat"])
        for button in ("picture_file", "session_file"):
            value = shown[button]
            shown[button] = value.get("value") if isinstance(value, dict) else value
        return shown

    def send(self, words: str, **settings: Any) -> dict[str, Any]:
        return self.call("/send", words=words, **settings)

    def apply(self, rows: list[list], background: str, negative: str = "", **settings: Any):
        table = {"headers": ["name", "x", "y", "w", "h"], "data": rows}
        return self.call("/apply", rows=table, background=background, negative=negative, **settings)

    def open(self, path: str | Path) -> dict[str, Any]:
        from gradio_client import handle_file

        return self.call("/open", upload=handle_file(str(path)))


class WebServer:
    """The `lmd web` app on a free loopback port, with its own scripted LLM server.

    As `lmd web` does: the server's key is in its environment (`OPENAI_API_KEY`, here
    `TEST_API_KEY`), Gradio's cache is a private folder under `root`, and visitors may choose
    the server's LLM or (`visitor_servers`) a server of their own.
    """

    def __init__(
        self,
        root: Path,
        *,
        concurrency: int = 1,
        limits: Any = None,
        allowed: tuple[str, ...] = (),
        visitor_servers: bool = True,
        seed: int | None = 7,
    ) -> None:
        self.root = Path(root)
        self.concurrency = concurrency
        self.limits = limits
        self.allowed = allowed
        self.visitor_servers = visitor_servers
        self.seed = seed

    def __enter__(self) -> WebServer:
        from lmd.api import RenderSettings
        from lmd.web.app import Defaults, build_app, launch, make_handlers
        from lmd.web.cache import use_private_cache
        from lmd.web.limits import WebLimits
        from lmd.web.llms import LlmChoice, LlmChoices

        self._saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "GRADIO_TEMP_DIR")}
        os.environ["OPENAI_API_KEY"] = TEST_API_KEY  # the server's own secret
        self.cache = use_private_cache(self.root)
        self.llm = ScriptedLLMServer()
        limits = self.limits or WebLimits()
        self.llms = LlmChoices(
            server=LlmChoice(TEST_MODEL, self.llm.url),
            allowed=[LlmChoice.parse(a) for a in self.allowed],
            visitor_servers=self.visitor_servers,
            cache=False,
            options=dict(retry_wait=0.001, max_retries=1, attempt_timeout=10.0,
                         max_boxes=limits.max_boxes),
        )  # fmt: skip
        self.settings = RenderSettings(**TINY_SETTINGS)
        self.handlers = make_handlers(
            self.root / "sessions", self.settings, self.llms, concurrency=self.concurrency,
            limits=limits,
        )  # fmt: skip
        self.demo = build_app(self.handlers, Defaults(seed=self.seed))
        self.url = launch(
            self.demo, port=free_port(), root=self.root, max_upload_bytes=limits.max_upload_bytes
        )
        return self

    def page(self) -> Page:
        from gradio_client import Client

        downloads = self.root / "downloads"
        client = Client(
            self.url, verbose=False, download_files=str(downloads), analytics_enabled=False
        )
        return Page(client)

    def reset(self) -> None:
        """Forget queued replies and recorded requests (between tests sharing the server)."""
        self.llm.queue.clear()
        self.llm.requests.clear()
        self.llm.default = None

    def __exit__(self, *exc: object) -> None:
        self.demo.close()
        self.llm.stop()
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

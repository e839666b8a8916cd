"""Which LLMs a visitor of `lmd web` may use, and with whose credentials.

The server offers its own LLM (`--llm`, `--llm-base-url`) and those it allows
(`--allow-llm MODEL[@URL]`, repeatable): these are asked with the server's keys (its
environment, as every lmd command). A visitor may also name an OpenAI-compatible server of
their own (when `--visitor-llm` allows it): that one gets the key the visitor typed in the same
form, or none, and never the server's. The typed key lives in memory for the request only: it
is not in the session file, the reply cache or Gradio's cache.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

OWN_SERVER = "your own server (below)"
"""The choice that uses the model, URL and key the visitor types."""
NO_KEY = "no-key"
"""The key sent to a visitor's server when they typed none (OpenAI-compatible servers that
check no key accept any)."""


@dataclass(frozen=True)
class LlmChoice:
    """One LLM the server offers: a litellm model string and its server (None: the provider's)."""

    model: str
    base_url: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model} at {self.base_url}" if self.base_url else self.model

    @classmethod
    def parse(cls, text: str) -> LlmChoice:
        """`MODEL` or `MODEL@URL` (the URL an http(s) one; a model may itself hold an @)."""
        text = text.strip()
        model, at, url = text.rpartition("@")
        if not at or not url.lower().startswith(("http://", "https://")):
            model, url = text, ""
        if not model:
            raise ValueError(f"--allow-llm takes MODEL or MODEL@URL, not {text!r}")
        if url:
            check_url(url, "--allow-llm")
        return cls(model, url or None)


def check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} needs an http(s) URL such as http://host:8000/v1, not {url!r}")


@dataclass
class LlmChoices:
    """The LLMs of one server, and a `lmd.prompts.Planner` for what a visitor picked.

    `cache` is the reply cache of the server's LLMs (`Planner(cache=)`; a visitor's server is
    never cached); `options` go to every planner (`max_retries`, `llm_timeout`, `max_boxes`,
    `on_retry`, ...).
    """

    server: LlmChoice
    allowed: Sequence[LlmChoice] = ()
    visitor_servers: bool = False
    cache: bool | str = True
    options: dict[str, Any] = field(default_factory=dict)
    _planners: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def offered(self) -> list[LlmChoice]:
        """The server's LLM first, then the allowed ones (each once)."""
        out: list[LlmChoice] = []
        for choice in (self.server, *self.allowed):
            if choice not in out:
                out.append(choice)
        return out

    @property
    def labels(self) -> list[str]:
        """What the page's LLM menu lists."""
        own = [OWN_SERVER] if self.visitor_servers else []
        return [c.label for c in self.offered] + own

    def planner(self, label: str | None, model: str = "", url: str = "", key: str = "") -> Any:
        """The planner for the menu's `label` (blank: the server's LLM); with `OWN_SERVER`, for
        the visitor's `model` at `url` with their `key`. Raises `ValueError` naming the field."""
        label = (label or "").strip() or self.server.label
        if label == OWN_SERVER and self.visitor_servers:
            return self._visitors(model, url, key)
        choice = next((c for c in self.offered if c.label == label), None)
        if choice is None:
            raise ValueError(f"LLM must be one of: {'; '.join(self.labels)} (not {label!r})")
        with self._lock:  # planners with the server's keys are made once and shared
            if label not in self._planners:
                self._planners[label] = self._make(choice.model, choice.base_url, None, self.cache)
            return self._planners[label]

    def _visitors(self, model: str, url: str, key: str) -> Any:
        model, url, key = (model or "").strip(), (url or "").strip(), (key or "").strip()
        if not model or not url:
            raise ValueError(
                "for your own server, give its model name and its base URL "
                "(an OpenAI-compatible server, such as http://host:8000/v1)"
            )
        check_url(url, "the base URL")
        # Always litellm's OpenAI-compatible client: a provider prefix such as "bedrock/" would
        # make litellm look for that provider's credentials in the server's environment.
        name = model if model.startswith("openai/") else f"openai/{model}"
        return self._make(name, url, key or NO_KEY, False)  # nothing of it is cached

    def _make(self, model: str, url: str | None, key: str | None, cache: bool | str) -> Any:
        """A planner; `key` None: the server's credentials (its environment, as litellm reads
        them), else exactly that key. `url` None: the provider's own server."""
        from lmd.prompts import Planner

        # "" rather than None: $LMD_LLM_BASE_URL was read when the server's choice was made.
        return Planner(
            model=model, llm_base_url=url or "", api_key=key, cache=cache, **self.options
        )

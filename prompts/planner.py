"""`Planner`: ask an LLM (any provider, through litellm) for a layout, repair, retry and cache."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lmd.layouts import Layout, LayoutParseError, LayoutWarning, parse
from lmd.layouts.model import MAX_BOXES
from lmd.layouts.paths import default_cache_dir
from lmd.prompts.cache import ReplyCache, cache_key
from lmd.prompts.errors import LLMUnavailableError, PlannerError
from lmd.prompts.failures import clip, excerpt, sendable, short, transient, unavailable, where
from lmd.prompts.language import LanguageWarning, language_note
from lmd.prompts.template import CANVAS, HistoryEntry, load_template
from lmd.prompts.transport import DeadlineExceeded, Outcome, RetryNotice, retrying, within

# litellm fetches a price list from the internet at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DEFAULT_LLM = "gpt-4.1-mini"
KEYLESS_PROVIDERS = ("ollama", "ollama_chat")
"""litellm providers that run locally and take no API key."""
MAX_REPLY_CHARS = 100_000
"""Replies longer than this are refused unread (a layout is a few hundred characters)."""
EXCERPT_CHARS = 2_000
"""How much of an unreadable reply a correction request quotes back."""

CORRECTION = (
    "Your answer could not be read as a layout: {error}\n"
    "Answer again with the complete layout in exactly this format and nothing else:\n"
    "Objects: [('a name', [x, y, w, h]), ...]\n"
    "Background prompt: ...\n"
    "Negative prompt: ..."
)


def default_llm() -> str:
    """`$LMD_LLM`, else `DEFAULT_LLM`."""
    return os.environ.get("LMD_LLM") or DEFAULT_LLM


def _litellm():
    """litellm, imported on first use (it takes seconds) and told to stay quiet."""
    import litellm

    litellm.suppress_debug_info = True
    litellm.num_retries = 0
    return litellm


RENAMED = {
    "api_base": "Planner(api_base=...) is now Planner(llm_base_url=...), as in generate() and "
    "--llm-base-url; api_base will be removed in the next release",
    "timeout": "Planner(timeout=...) is now Planner(attempt_timeout=...) (each attempt; "
    "llm_timeout bounds the whole request); timeout will be removed in the next release",
}


def _renamed(
    given: dict[str, Any], llm_base_url: str | None, attempt_timeout: float
) -> tuple[str | None, float]:
    """The values of `llm_base_url` and `attempt_timeout`, taking their old keywords (with a
    `DeprecationWarning`); any other keyword is a `TypeError`, as Python would raise."""
    unknown = set(given) - set(RENAMED)
    if unknown:
        raise TypeError(f"Planner() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    for old in given:
        warnings.warn(RENAMED[old], DeprecationWarning, stacklevel=3)
    if "api_base" in given:
        llm_base_url = given["api_base"] if llm_base_url is None else llm_base_url
    if "timeout" in given:
        attempt_timeout = given["timeout"]
    return llm_base_url, attempt_timeout


@dataclass(frozen=True)
class AskNotice:
    """A request about to go to the LLM (or a reply replayed from the cache instead); `str()`
    gives one line for people."""

    model: str
    where: str | None  # the server's URL, or None for the provider's own
    attempt: int = 1  # 2 and on: a correction request after an answer that was no layout
    problem: str = ""  # what was wrong with the previous answer
    cached: bool = False

    def __str__(self) -> str:
        at = f" at {self.where}" if self.where else ""
        if self.cached:
            return f"{self.model}{at}: a cached reply, nothing asked"
        if self.attempt > 1:
            return f"asking {self.model}{at} again (its answer was no layout: {self.problem})"
        return f"asking {self.model}{at}"


@dataclass
class PlanResult:
    """An accepted layout, the raw reply it was read from, and how it was obtained."""

    layout: Layout
    reply: str
    attempts: int  # LLM replies read (1 + corrections); 0 when replayed from the cache
    cached: bool
    warnings: list[str] = field(default_factory=list)  # boxes clipped or dropped
    language: str | None = None  # said once per planner: the layout is not in English


class Planner:
    """Plans and edits layouts with an LLM through litellm.

    `model` is a litellm model string (`gpt-4.1-mini`, `anthropic/...`, `ollama/...`, or
    `openai/NAME` with `llm_base_url` for any OpenAI-compatible server); default `$LMD_LLM`,
    else `DEFAULT_LLM`. `llm_base_url` defaults to `$LMD_LLM_BASE_URL`. `cache` is True (the
    default folder), a folder, or False. Transport errors, timeouts, 429 and 5xx are retried
    `max_retries` times with exponential backoff starting at `retry_wait` seconds (or the
    server's `Retry-After`), and `on_retry(notice)` hears of each retry (a `RetryNotice`);
    `attempt_timeout` bounds each attempt and `llm_timeout` the whole request, retries and
    waits included. `on_ask(notice)` hears of every request before it is sent, and of every
    reply replayed from the cache (an `AskNotice`). An unreadable reply, one over
    `max_reply_chars`, or a layout of more than `max_boxes` objects is sent back (an excerpt)
    with what was wrong, at most `max_repairs` times.

    `llm_base_url` and `llm_timeout` are the names `generate()` and the CLI use
    (`--llm-base-url`, `--llm-timeout`); the old keywords `api_base` and `timeout` still work
    for this release, with a `DeprecationWarning`.
    """

    def __init__(
        self,
        model: str | None = None,
        llm_base_url: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.25,
        max_tokens: int = 900,
        cache: bool | str | Path = True,
        template_dir: str | Path | None = None,
        max_repairs: int = 2,
        max_retries: int = 4,
        attempt_timeout: float = 60.0,
        retry_wait: float = 1.0,
        llm_timeout: float = 120.0,
        max_reply_chars: int = MAX_REPLY_CHARS,
        on_retry: Callable[[RetryNotice], None] | None = None,
        on_ask: Callable[[AskNotice], None] | None = None,
        max_boxes: int = MAX_BOXES,
        **renamed: Any,
    ):
        # 1. Check inputs (the keywords renamed in 0.x still work, with a warning)
        llm_base_url, attempt_timeout = _renamed(renamed, llm_base_url, attempt_timeout)
        if llm_base_url is None:
            llm_base_url = os.environ.get("LMD_LLM_BASE_URL")
        if llm_base_url:
            url = urlsplit(llm_base_url)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(
                    f"the LLM base URL must be an http(s) URL such as "
                    f"http://localhost:8000/v1, got {llm_base_url!r}"
                )
        if max_repairs < 0 or max_retries < 0:
            raise ValueError(
                f"`max_repairs` and `max_retries` must be >= 0, got {max_repairs} and {max_retries}"
            )
        if max_tokens <= 0 or not attempt_timeout > 0:
            raise ValueError(
                f"`max_tokens` and `attempt_timeout` must be > 0, got {max_tokens}, "
                f"{attempt_timeout}"
            )
        if not llm_timeout > 0 or max_reply_chars <= 0:
            raise ValueError(
                f"`llm_timeout` and `max_reply_chars` must be > 0, "
                f"got {llm_timeout} and {max_reply_chars}"
            )
        if max_boxes < 1:
            raise ValueError(f"`max_boxes` must be >= 1, got {max_boxes}")
        # 2. Settings
        self.model = model or default_llm()
        self.llm_base_url = llm_base_url or None
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_repairs = max_repairs
        self.max_retries = max_retries
        self.attempt_timeout = attempt_timeout
        self.retry_wait = retry_wait
        self.llm_timeout = llm_timeout
        self.max_reply_chars = max_reply_chars
        self.on_retry = on_retry
        self.on_ask = on_ask
        self.max_boxes = max_boxes
        self._language_noted = False
        # 3. Template and cache
        self.template = load_template(template_dir)
        if cache is True:
            cache = default_cache_dir() / "llm"
        self.cache = ReplyCache(cache) if cache else None

    @property
    def api_base(self) -> str | None:
        """Deprecated name of `llm_base_url`."""
        warnings.warn(RENAMED["api_base"], DeprecationWarning, stacklevel=2)
        return self.llm_base_url

    @property
    def timeout(self) -> float:
        """Deprecated name of `attempt_timeout`."""
        warnings.warn(RENAMED["timeout"], DeprecationWarning, stacklevel=2)
        return self.attempt_timeout

    def __repr__(self) -> str:
        return f"Planner(model={self.model!r}, llm_base_url={self.llm_base_url!r})"

    # --- public API ---------------------------------------------------------------------

    def plan(self, caption: str) -> Layout:
        """The layout for `caption` (any language)."""
        return self.complete(self.plan_messages(caption)).layout

    def edit(self, history: Sequence[HistoryEntry], request: str) -> Layout:
        """The complete new layout after `request`, given earlier (user text, layout) turns."""
        return self.complete(self.edit_messages(history, request)).layout

    def plan_messages(self, caption: str) -> list[dict]:
        _check_text(caption, "caption")
        return self.template.plan_messages(caption)

    def story_messages(self, caption: str, cast: Sequence[str]) -> list[dict]:
        """Planning messages for one picture of a series whose earlier pictures drew `cast`."""
        _check_text(caption, "caption")
        return self.template.story_messages(caption, cast)

    def edit_messages(self, history: Sequence[HistoryEntry], request: str) -> list[dict]:
        _check_text(request, "request")
        return self.template.edit_messages(history, request)

    def cache_key(self, messages: list[dict], sample: int = 0) -> str:
        """Key of a reply: model, server, template hash, messages, sampling settings, sample #."""
        parts = dict(
            model=self.model,
            template=self.template.hash,
            messages=messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        if self.llm_base_url:  # another server under the same model name is another model
            parts["api_base"] = self.llm_base_url.rstrip("/")  # the key's name since 0.1
        if sample:
            parts["sample"] = sample
        return cache_key(**parts)

    def complete(self, messages: list[dict], sample: int = 0) -> PlanResult:
        """Ask for a layout with `messages`, repairing unreadable replies; raise `PlannerError`.

        `sample` numbers independent answers to the same messages (e.g. benchmark repeats):
        each has its own cache entry.
        """
        # 1. Replay from the cache
        key = self.cache_key(messages, sample)
        if self.cache is not None and (reply := self.cache.get(key)) is not None:
            try:
                layout, notes = self._read(reply)
            except LayoutParseError:
                pass  # a damaged entry: ask again and overwrite it
            else:
                self._tell(AskNotice(self.model, self.llm_base_url, cached=True))
                result = PlanResult(layout, reply, attempts=0, cached=True, warnings=notes)
                return self._emit(result)
        # 2. Ask, sending parse errors back as correction requests (quoting an excerpt)
        conversation = list(messages)
        problem = reply = ""
        attempts = self.max_repairs + 1
        for attempt in range(1, attempts + 1):
            reply = self._ask(
                conversation, AskNotice(self.model, self.llm_base_url, attempt, problem)
            )
            try:
                layout, notes = self._read(reply)
            except LayoutParseError as e:
                problem = clip(str(e), 300)
                conversation += [
                    {"role": "assistant", "content": excerpt(reply, EXCERPT_CHARS)},
                    {"role": "user", "content": CORRECTION.format(error=clip(e.for_llm, 500))},
                ]
                continue
            # 3. Keep it for replay, unless clipping took every box it had
            lost_every_box = not layout.boxes and bool(notes)
            if self.cache is not None and not lost_every_box:
                try:
                    self.cache.put(key, reply, model=self.model, template=self.template.hash)
                except OSError as e:  # the layout is good; only replaying it later is lost
                    warnings.warn(f"could not cache the LLM reply: {e}", RuntimeWarning, 2)
            result = PlanResult(layout, reply, attempts=attempt, cached=False, warnings=notes)
            return self._emit(result)
        raise PlannerError(no_layout(self.model, attempts, problem, reply), attempts=attempts)

    # --- talking to the LLM -------------------------------------------------------------

    def _ask(self, messages: list[dict], notice: AskNotice) -> str:
        """One reply's text (`notice` told first); transport problems retried within the
        deadline, else raised."""
        litellm = _litellm()
        model, api_key = self._credentials(litellm)
        self._tell(notice)
        llm = where(self.model, self.llm_base_url)
        deadline = time.monotonic() + self.llm_timeout
        outcome = Outcome()

        def attempt():
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"the {self.llm_timeout:g} s deadline passed")
            return within(
                left,
                lambda: litellm.acompletion(
                    model=model, messages=messages, api_base=self.llm_base_url, api_key=api_key,
                    temperature=self.temperature, max_tokens=self.max_tokens,
                    timeout=self.attempt_timeout, num_retries=0, max_retries=0,
                    drop_params=True,
                ),
            )  # fmt: skip

        def notify(state) -> None:
            if self.on_retry is not None:
                error = short(state.outcome.exception(), 160)
                tries, wait = state.attempt_number, state.upcoming_sleep
                self.on_retry(RetryNotice(llm, tries, self.max_retries, wait, error))

        policy = retrying(
            retries=self.max_retries, first_wait=self.retry_wait, deadline=deadline,
            transient=lambda e: transient(litellm, e), outcome=outcome, notify=notify,
        )  # fmt: skip
        try:
            response = policy(attempt)
        except Exception as e:  # litellm maps every provider's errors; none may escape raw
            tries = policy.statistics.get("attempt_number", 1)
            limit = self.llm_timeout if outcome.out_of_time else None
            error = unavailable(litellm, e, where=llm, model=self.model, tries=tries, limit=limit)
            raise error from None
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            content = None
        return content if isinstance(content, str) else ""

    def _credentials(self, litellm) -> tuple[str, str | None]:
        """The model string and key to send; a missing key is one readable error."""
        model, api_key = self.model, self.api_key
        try:
            provider = litellm.get_llm_provider(model)[1]
        except Exception:
            if not self.llm_base_url:
                raise LLMUnavailableError(
                    f"unknown LLM {model!r}: use a litellm model string such as "
                    f"'gpt-4.1-mini', 'anthropic/claude-3-5-haiku-latest' or 'ollama/llama3', "
                    f"or 'openai/NAME' with `llm_base_url` (or $LMD_LLM_BASE_URL)"
                ) from None
            model, provider = f"openai/{model}", "openai"
        if api_key is None and provider in KEYLESS_PROVIDERS:
            return model, api_key  # a local server (Ollama at localhost:11434 by default)
        if api_key is None:
            env = litellm.validate_environment(model=model)
            if not env.get("keys_in_environment", True):
                if not self.llm_base_url:
                    missing = " or ".join(env.get("missing_keys") or ["its API key"])
                    raise LLMUnavailableError(
                        f"no API key for {provider}: set {missing} or use `llm_base_url` "
                        "(or $LMD_LLM_BASE_URL) for a server that needs none"
                    )
                api_key = "no-key"  # local OpenAI-compatible servers accept any key
        return model, api_key

    def _tell(self, notice: AskNotice) -> None:
        if self.on_ask is not None:
            self.on_ask(notice)

    def _read(self, reply: str) -> tuple[Layout, list[str]]:
        """Parse a reply (refusing one over `max_reply_chars`), collecting the parser's notes."""
        if len(reply) > self.max_reply_chars:
            raise LayoutParseError(
                f"it is {len(reply):,} characters long, more than the "
                f"{self.max_reply_chars:,} a layout may take",
                fix="answer with the layout only",
            )
        layout, notes = _read(reply)
        if len(layout.boxes) > self.max_boxes:
            raise LayoutParseError(
                f"the layout has {len(layout.boxes)} objects, more than the {self.max_boxes} a "
                "picture may have; group similar objects into one box or leave some out"
            )
        return layout, notes

    def _emit(self, result: PlanResult) -> PlanResult:
        """Warn about the result's clipped boxes, and once per planner about its language."""
        if not self._language_noted and (note := language_note(result.layout)):
            self._language_noted = True
            result.language = note
            warnings.warn(note, LanguageWarning, stacklevel=3)
        for note in result.warnings:
            warnings.warn(note, LayoutWarning, stacklevel=3)
        return result


def no_layout(model: str, attempts: int, problem: str, reply: str) -> str:
    """Why planning failed, for people: what the LLM's last answer lacked and how it began."""
    began = " ".join(reply.split())
    began = f"; it began {clip(began, 80)!r}" if began else ""
    tries = "once" if attempts == 1 else f"{attempts} times"
    return (
        f"{model} answered {tries} but never with a layout lmd can read (its last answer: "
        f"{problem}{began}); try again, say it differently, or use another LLM"
    )


def _read(reply: str) -> tuple[Layout, list[str]]:
    """Parse a reply on the template canvas, collecting the parser's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayoutWarning)
        layout = parse(reply, *CANVAS)
    return layout, [str(w.message) for w in caught if issubclass(w.category, LayoutWarning)]


def _check_text(text: object, what: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"the {what} must be non-empty text, got {clip(repr(text), 80)}")
    if sendable(text) != text:
        raise ValueError(f"the {what} holds a lone surrogate, which is not text: {text!r:.80}")

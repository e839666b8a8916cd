"""What a failed LLM request means: worth retrying or not, and one line that says why.

Messages say what happened in a person's words: "connection refused" rather than the
"HTTP 500: Connection error" litellm reports for a server that is not there, and "the answer
was not JSON" for a server that answered something else (a web page, a proxy's notice).
"""

from __future__ import annotations

import re
import socket

from lmd.layouts.words import counted
from lmd.prompts.errors import LLMUnavailableError, PlannerError
from lmd.prompts.transport import DeadlineExceeded

_PREFIXES = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception)\s*[:-]\s*)+")
_SURROGATES = re.compile("[\ud800-\udfff]")


NOT_JSON_MARK = "Empty or invalid response from LLM endpoint"
"""How litellm's OpenAI client reports a 200 answer that is not a chat completion."""
_RECEIVED = re.compile(r"Received: '(.*?)'\. Check", re.S)


def where(model: str, api_base: str | None) -> str:
    """How messages name the LLM asked: `at http://server/v1`, or the model for a provider."""
    return f"at {api_base}" if api_base else model


def transient(litellm, e: BaseException) -> bool:
    """Worth retrying: transport errors, timeouts, 429 and 5xx (not an answer that is no JSON:
    the next one will not be either)."""
    ex = litellm.exceptions
    if not_json(e) is not None:
        return False
    if isinstance(e, ex.AuthenticationError | ex.PermissionDeniedError | ex.BadRequestError):
        return False
    if isinstance(e, ex.NotFoundError):
        return False
    kinds = (
        ex.RateLimitError, ex.APIConnectionError, ex.Timeout, ex.InternalServerError,
        ex.ServiceUnavailableError, ex.BadGatewayError,
    )  # fmt: skip
    if isinstance(e, kinds):
        return True
    status = getattr(e, "status_code", None)
    return isinstance(e, ex.APIError) and (not isinstance(status, int) or status >= 500)


def unavailable(
    litellm, e: BaseException, *, where: str, model: str, tries: int, limit: float | None
) -> PlannerError:
    """The one-line error for a request that failed for good; `limit` when time ran out.

    `where` names the LLM as `lmd.prompts.failures.where` does ("at URL", or the model).
    """
    ex = litellm.exceptions
    detail = short(e)
    count = counted(tries, "try")
    if limit is not None:
        return LLMUnavailableError(
            f"no answer from the LLM {where} within the {limit:g} s deadline ({count}); "
            f"last error: {detail}"
        )
    if (received := not_json(e)) is not None:
        hint = "; check the base URL (an OpenAI-compatible server's usually ends in /v1)"
        return LLMUnavailableError(
            f"the LLM {where} answered, but not with JSON (it sent {received})"
            f"{hint if where.startswith('at ') else ''}"
        )
    if isinstance(e, ex.AuthenticationError | ex.PermissionDeniedError):
        return LLMUnavailableError(f"the LLM {where} rejected the API key: {detail}")
    if isinstance(e, ex.NotFoundError):
        return LLMUnavailableError(f"the LLM {where} has no model {model!r}: {detail}")
    if isinstance(e, ex.BadRequestError):
        return LLMUnavailableError(f"the LLM {where} rejected the request: {detail}")
    if isinstance(e, ex.APIConnectionError | ex.Timeout) or _is_connection_error(e):
        return LLMUnavailableError(f"could not reach the LLM {where} ({count}): {detail}")
    if transient(litellm, e) or isinstance(e, DeadlineExceeded):
        return LLMUnavailableError(f"the LLM {where} kept failing ({count}): {detail}")
    return LLMUnavailableError(f"asking the LLM {where} failed: {detail}")


def short(e: BaseException, limit: int = 300) -> str:
    """The useful part of a litellm message, one line, without stacked class-name prefixes;
    a connection that failed says how, an answer that was no JSON says so (no "HTTP 500")."""
    if (how := connection_failure(e)) is not None:
        return how
    if (received := not_json(e)) is not None:
        return clip(f"the answer was not JSON: {received}", limit)
    text = " ".join(str(e)[:4000].split())
    text = _PREFIXES.sub("", text).strip() or type(e).__name__
    status = getattr(e, "status_code", None)
    if isinstance(status, int) and str(status) not in text:
        text = f"HTTP {status}: {text}"
    return clip(text, limit)


def sendable(text: str) -> str:
    """`text` with lone surrogates replaced: they cannot be encoded, so never sent."""
    return _SURROGATES.sub("\ufffd", text)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, sendable."""
    return sendable(text if len(text) <= limit else text[: limit - 3] + "...")


def excerpt(reply: str, limit: int = 2000) -> str:
    """A bounded, sendable excerpt of a reply for a correction request."""
    if len(reply) <= limit:
        return sendable(reply)
    head = reply[: limit - 100]
    return sendable(f"{head}\n[... {len(reply) - len(head):,} more characters]")


def not_json(e: BaseException) -> str | None:
    """The start of what a server sent instead of a chat completion (quoted), or None."""
    text = str(e)[:4000]
    if NOT_JSON_MARK not in text:
        return None
    found = _RECEIVED.search(text)
    received = " ".join(found.group(1).split()) if found else ""
    return repr(clip(received, 80)) if received else "an empty answer"


def connection_failure(e: BaseException) -> str | None:
    """How a connection failed ("connection refused", ...) when the cause says, else None."""
    seen: BaseException | None = e
    for _ in range(12):  # litellm, openai, httpx and aiohttp each wrap the one before
        if seen is None:
            return None
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused: nothing is listening at that address"
        if isinstance(seen, socket.gaierror):
            return "the server's name is not known: check the host name"
        if isinstance(seen, ConnectionResetError):
            return "the connection was reset"
        if isinstance(seen, OSError) and seen.errno is not None and "unreachable" in str(seen):
            return "the network is unreachable"
        seen = seen.__cause__ or seen.__context__
    return None


def _is_connection_error(e: BaseException) -> bool:
    """No answer at all (refused, DNS, reset), however litellm classified it."""
    seen: BaseException | None = e
    while seen is not None:
        name = type(seen).__name__
        if name in ("ConnectError", "ConnectTimeout", "APIConnectionError", "RemoteProtocolError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return "connection error" in str(e)[:4000].lower()

"""What a failed LLM request means: worth retrying or not, and one line that says why."""

from __future__ import annotations

import re

from lmd.layouts.words import counted
from lmd.prompts.errors import LLMUnavailableError, PlannerError
from lmd.prompts.transport import DeadlineExceeded

_PREFIXES = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception)\s*[:-]\s*)+")
_SURROGATES = re.compile("[\ud800-\udfff]")


def transient(litellm, e: BaseException) -> bool:
    """Worth retrying: transport errors, timeouts, 429 and 5xx."""
    ex = litellm.exceptions
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
    """The one-line error for a request that failed for good; `limit` when time ran out."""
    ex = litellm.exceptions
    detail = short(e)
    count = counted(tries, "try")
    if limit is not None:
        return LLMUnavailableError(
            f"no answer from the LLM at {where} within the {limit:g} s deadline ({count}); "
            f"last error: {detail}"
        )
    if isinstance(e, ex.AuthenticationError | ex.PermissionDeniedError):
        return LLMUnavailableError(f"the LLM at {where} rejected the API key: {detail}")
    if isinstance(e, ex.NotFoundError):
        return LLMUnavailableError(f"the LLM at {where} has no model {model!r}: {detail}")
    if isinstance(e, ex.BadRequestError):
        return LLMUnavailableError(f"the LLM at {where} rejected the request: {detail}")
    if isinstance(e, ex.APIConnectionError | ex.Timeout) or _is_connection_error(e):
        return LLMUnavailableError(f"could not reach the LLM at {where} ({count}): {detail}")
    if transient(litellm, e) or isinstance(e, DeadlineExceeded):
        return LLMUnavailableError(f"the LLM at {where} kept failing ({count}): {detail}")
    return LLMUnavailableError(f"asking the LLM at {where} failed: {detail}")


def short(e: BaseException, limit: int = 300) -> str:
    """The useful part of a litellm message, one line, without stacked class-name prefixes."""
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


def _is_connection_error(e: BaseException) -> bool:
    """No answer at all (refused, DNS, reset), however litellm classified it."""
    seen: BaseException | None = e
    while seen is not None:
        name = type(seen).__name__
        if name in ("ConnectError", "ConnectTimeout", "APIConnectionError", "RemoteProtocolError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return "connection error" in str(e)[:4000].lower()

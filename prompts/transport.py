"""One LLM request under a total deadline: retries with backoff, Retry-After, retry notices.

A request runs as litellm's async call on one background event loop, so the deadline can
cancel it (and close its connection) whatever the server does: answer slowly, trickle one
byte at a time, or stay silent. tenacity owns the retry policy; a wait never runs past the
deadline, and a server's `Retry-After` is honoured when it fits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email.utils
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential


class DeadlineExceeded(TimeoutError):
    """The request's total time ran out before an answer came."""


@dataclass(frozen=True)
class RetryNotice:
    """A failed attempt that is about to be retried; `str()` gives one line for people."""

    where: str  # the LLM asked: "at http://server/v1", or the model (a provider's default)
    attempt: int  # the attempt that failed, from 1
    retries: int  # retries allowed in all
    wait: float  # seconds until the next attempt
    error: str  # what went wrong, one line

    def __str__(self) -> str:
        return (
            f"the LLM {self.where} failed ({self.error}); "
            f"retry {self.attempt} of {self.retries} in {self.wait:.1f} s"
        )


@dataclass
class Outcome:
    """How a request ended, for the error message: whether time ran out."""

    out_of_time: bool = False


class _Loop:
    """A daemon thread running one event loop for every request of the process.

    At exit the loop finishes what litellm left running on it (its logging tasks) and stops:
    a daemon thread frozen in the middle of an import would hold the import lock, and the
    interpreter would hang when a finaliser imports something.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child needs its own
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="lmd-llm", daemon=True)
                thread.start()
                if self._pid == 0:
                    atexit.register(self.stop)
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def stop(self, grace: float = 2.0) -> None:
        """Let pending tasks finish (up to `grace` seconds), then stop the loop and its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._pid != os.getpid():
                return
            self._loop = self._thread = None
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_settle(grace), loop).result(grace + 1)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(grace)
        if not thread.is_alive():
            loop.close()


async def _settle(grace: float) -> None:
    """Wait for the loop's other tasks, then cancel whatever is still running."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()


_LOOP = _Loop()


def within(seconds: float, make: Callable[[], Awaitable[Any]]) -> Any:
    """Await `make()` on the background loop; cancel it after `seconds` (`DeadlineExceeded`)."""

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(make(), timeout=seconds)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"no complete answer within {seconds:.1f} s") from None

    future = asyncio.run_coroutine_threadsafe(bounded(), _LOOP.get())
    try:
        return future.result()
    except BaseException:  # Ctrl-C while waiting: stop the request too
        future.cancel()
        raise


def retry_after(e: BaseException) -> float | None:
    """Seconds a server asked to wait (`Retry-After` / `retry-after-ms`), if it said."""
    headers = getattr(getattr(e, "response", None), "headers", None)
    headers = headers or getattr(e, "litellm_response_headers", None)
    if not headers:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:  # an HTTP date
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def retrying(
    *,
    retries: int,
    first_wait: float,
    deadline: float,
    transient: Callable[[BaseException], bool],
    outcome: Outcome,
    notify: Callable[[RetryCallState], None] | None,
) -> Retrying:
    """The retry policy: `retries` more attempts with exponential backoff, none past `deadline`
    (a `time.monotonic()` value); a server's Retry-After replaces a shorter backoff."""
    backoff = wait_exponential(multiplier=first_wait, max=max(first_wait, 30.0))

    def wait(state: RetryCallState) -> float:
        asked = retry_after(state.outcome.exception()) if state.outcome else None
        return max(backoff(state), asked or 0.0)

    def stop(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        left = deadline - time.monotonic()
        outcome.out_of_time = isinstance(error, DeadlineExceeded) or state.upcoming_sleep >= left
        return outcome.out_of_time or state.attempt_number > retries

    def before_sleep(state: RetryCallState) -> None:
        if notify is not None:
            notify(state)

    return Retrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, DeadlineExceeded) or transient(e)),
        before_sleep=before_sleep,
        reraise=True,
    )

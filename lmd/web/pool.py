"""`RenderPool`: loaded renderers shared by every browser session, at most `slots` at work.

One pipeline cannot draw two pictures at once (its attention processors hold one render's
state), so each concurrent render gets a renderer of its own; renderers with the same
settings share one per-object cache, so a session's unchanged objects are reused whichever
renderer draws its next turn.

The pool is the page's queue: pictures wait in one line, first come first served, at most
`max_waiting` of them (one more is refused as busy). A waiting picture is told, about once a
second, how many are before it and how long that will take by this server's measured render
times (`RenderClock`), and can be stopped while it waits.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lmd.api import Renderer, RenderSettings, load_controller
from lmd.layouts import LmdError
from lmd.web.clock import RenderClock
from lmd.web.stop import RenderStopped

REPORT_EVERY = 1.0
"""Seconds between two reports to a waiting picture of where it stands."""


class ServerBusy(LmdError):
    """The line of pictures waiting for a renderer is full."""


class SharedCache:
    """A lock around a `BoxCache`, for renderers that share it across threads."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            return self._cache.get(key)

    def put(self, result: Any) -> None:
        with self._lock:
            self._cache.put(result)

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._cache

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


@dataclass
class _Group:
    """The renderers loaded for one `RenderSettings`."""

    cache: SharedCache | None = None
    idle: list[Renderer] = field(default_factory=list)
    busy: int = 0

    @property
    def size(self) -> int:
        return len(self.idle) + self.busy


def _load_renderer(settings: RenderSettings, first: bool) -> Renderer:
    # The first renderer of a settings shares `load_controller`'s models with the rest of
    # lmd; further ones need models of their own to draw at the same time.
    controller = load_controller(settings) if first else load_controller.__wrapped__(settings)
    return Renderer(settings, controller=controller)


class RenderPool:
    """Hands out renderers by settings; at most `slots` renders run at once, the others wait
    in line (at most `max_waiting`).

    `max_settings` bounds how many different settings stay loaded: the least recently used
    idle ones are let go. `load` builds a renderer (`settings`, `first`); tests pass their own.
    """

    def __init__(
        self,
        slots: int = 1,
        *,
        max_settings: int = 2,
        max_waiting: int = 16,
        load: Callable[[RenderSettings, bool], Renderer] = _load_renderer,
        clock: RenderClock | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"`slots` must be at least 1, got {slots}")
        if max_settings < 1:
            raise ValueError(f"`max_settings` must be at least 1, got {max_settings}")
        if max_waiting < 1:
            raise ValueError(f"`max_waiting` must be at least 1, got {max_waiting}")
        self.slots = slots
        self.max_settings = max_settings
        self.max_waiting = max_waiting
        self.clock = clock or RenderClock()
        self._load = load
        self._groups: OrderedDict[RenderSettings, _Group] = OrderedDict()
        self._changed = threading.Condition()
        self._running: dict[object, float] = {}  # render -> when it started
        self._line: deque[object] = deque()

    @contextmanager
    def renderer(
        self,
        settings: RenderSettings,
        on_load: Callable[[], None] | None = None,
        *,
        on_wait: Callable[[str], None] | None = None,
        stopped: Callable[[], bool] | None = None,
    ) -> Iterator[Renderer]:
        """A renderer for `settings`, held for the `with` block (waits in line while all are
        busy, telling `on_wait(text)` where it stands; raises `RenderStopped` once `stopped()`
        and `ServerBusy` when the line is full). `on_load()` is called first when the models
        must be loaded for it. The block's time is measured for later estimates.
        """
        ticket = object()
        renderer, first = self._take(ticket, settings, on_wait, stopped)
        group = self._groups[settings]
        try:
            if renderer is None:
                if on_load is not None:
                    on_load()
                renderer = self._load(settings, first)
                if group.cache is None:
                    group.cache = SharedCache(renderer.cache)
                renderer.cache = group.cache
        except BaseException:
            self._give_back(ticket, settings, None)
            raise
        started = time.monotonic()
        try:
            yield renderer
            self.clock.record(time.monotonic() - started)
        finally:
            self._give_back(ticket, settings, renderer)

    @property
    def running(self) -> int:
        """Renders in progress now."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """Pictures waiting in line for a renderer."""
        return len(self._line)

    def loaded(self, settings: RenderSettings) -> int:
        """How many renderers are loaded for `settings`."""
        group = self._groups.get(settings)
        return group.size if group is not None else 0

    def _take(self, ticket, settings, on_wait, stopped) -> tuple[Renderer | None, bool]:
        with self._changed:
            if (n := len(self._line)) >= self.max_waiting:
                raise ServerBusy(
                    f"the server is busy: {n} {'picture is' if n == 1 else 'pictures are'} "
                    "waiting for it already; try again in a few minutes"
                )
            self._line.append(ticket)
        try:
            told = 0.0
            while True:
                with self._changed:
                    if self._line[0] is ticket and self._free_for(settings):
                        self._line.popleft()
                        return self._claim(ticket, settings)
                    now = time.monotonic()
                    text = self.clock.waiting_text(
                        [now - t for t in self._running.values()], self._line.index(ticket),
                        self.slots,
                    )  # fmt: skip
                if stopped is not None and stopped():
                    raise RenderStopped()
                if on_wait is not None and now - told >= REPORT_EVERY:
                    on_wait(text)
                    told = now
                with self._changed:
                    if not (self._line[0] is ticket and self._free_for(settings)):
                        self._changed.wait(timeout=REPORT_EVERY / 4)
        except BaseException:
            with self._changed:
                if ticket in self._line:
                    self._line.remove(ticket)
                self._changed.notify_all()
            raise

    def _free_for(self, settings: RenderSettings) -> bool:
        group = self._groups.get(settings) or _Group()
        return len(self._running) < self.slots and (bool(group.idle) or group.size < self.slots)

    def _claim(self, ticket, settings: RenderSettings) -> tuple[Renderer | None, bool]:
        group = self._groups.setdefault(settings, _Group())
        self._groups.move_to_end(settings)
        self._running[ticket] = time.monotonic()
        group.busy += 1
        first = group.size == 1 and not group.idle
        renderer = group.idle.pop() if group.idle else None
        self._evict()
        return renderer, first

    def _give_back(self, ticket, settings: RenderSettings, renderer: Renderer | None) -> None:
        with self._changed:
            group = self._groups[settings]
            group.busy -= 1
            self._running.pop(ticket, None)
            if renderer is not None:
                group.idle.append(renderer)
            elif group.size == 0 and group.cache is None:
                del self._groups[settings]
            self._changed.notify_all()

    def _evict(self) -> None:
        """Let go of the least recently used settings whose renderers are all idle."""
        for key in list(self._groups):
            if len(self._groups) <= self.max_settings:
                return
            if self._groups[key].busy == 0:
                del self._groups[key]

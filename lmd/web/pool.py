"""`RenderPool`: loaded renderers shared by every browser session, at most `slots` at work.

One pipeline cannot draw two pictures at once (its attention processors hold one render's
state), so each concurrent render gets a renderer of its own; renderers with the same
settings share one per-object cache, so a session's unchanged objects are reused whichever
renderer draws its next turn. Gradio's queue already admits at most `slots` renders; the
pool makes that limit hold for the models too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lmd.api import Renderer, RenderSettings, load_controller


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
    """Hands out renderers by settings; at most `slots` renders run at once.

    `max_settings` bounds how many different settings stay loaded: the least recently used
    idle ones are let go. `load` builds a renderer (`settings`, `first`); tests pass their own.
    """

    def __init__(
        self,
        slots: int = 1,
        *,
        max_settings: int = 2,
        load: Callable[[RenderSettings, bool], Renderer] = _load_renderer,
    ) -> None:
        if slots < 1:
            raise ValueError(f"`slots` must be at least 1, got {slots}")
        if max_settings < 1:
            raise ValueError(f"`max_settings` must be at least 1, got {max_settings}")
        self.slots = slots
        self.max_settings = max_settings
        self._load = load
        self._groups: OrderedDict[RenderSettings, _Group] = OrderedDict()
        self._changed = threading.Condition()
        self._running = 0

    @contextmanager
    def renderer(
        self, settings: RenderSettings, on_load: Callable[[], None] | None = None
    ) -> Iterator[Renderer]:
        """A renderer for `settings`, held for the `with` block (waits while all are busy).

        `on_load()` is called first when the models must be loaded for it.
        """
        renderer, first = self._take(settings)
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
            self._give_back(settings, None)
            raise
        try:
            yield renderer
        finally:
            self._give_back(settings, renderer)

    @property
    def running(self) -> int:
        """Renders in progress now."""
        return self._running

    def loaded(self, settings: RenderSettings) -> int:
        """How many renderers are loaded for `settings`."""
        group = self._groups.get(settings)
        return group.size if group is not None else 0

    def _take(self, settings: RenderSettings) -> tuple[Renderer | None, bool]:
        with self._changed:
            while True:
                group = self._groups.setdefault(settings, _Group())
                self._groups.move_to_end(settings)
                if self._running < self.slots and (group.idle or group.size < self.slots):
                    break
                self._changed.wait()
            self._running += 1
            group.busy += 1
            first = group.size == 1 and not group.idle
            renderer = group.idle.pop() if group.idle else None
            self._evict()
            return renderer, first

    def _give_back(self, settings: RenderSettings, renderer: Renderer | None) -> None:
        with self._changed:
            group = self._groups[settings]
            group.busy -= 1
            self._running -= 1
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

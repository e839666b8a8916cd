"""`RenderClock`: how long pictures take on this server, measured, and what a wait will be.

The estimate a waiting visitor sees comes from the renders this server finished (the median
of the last `KEPT`), never from a constant: before the first picture it says there is no
estimate yet, and a picture taking longer than usual is named as such rather than hidden.
"""

from __future__ import annotations

import heapq
import statistics
import threading
import time
from collections import deque
from collections.abc import Sequence

KEPT = 20
"""Renders the median is taken over (the most recent ones)."""


class RenderClock:
    """Durations of the renders finished here, and the estimate of a wait in the line."""

    def __init__(self, kept: int = KEPT) -> None:
        self._durations: deque[float] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def record(self, seconds: float) -> None:
        with self._lock:
            self._durations.append(seconds)

    @property
    def typical(self) -> float | None:
        """The median duration of the last renders, or None before the first."""
        with self._lock:
            return statistics.median(self._durations) if self._durations else None

    @property
    def measured(self) -> int:
        with self._lock:
            return len(self._durations)

    def wait(self, running: Sequence[float], ahead: int, slots: int) -> float | None:
        """Seconds until a picture with `ahead` others before it in the line gets a renderer,
        given the elapsed times of the `running` renders; None when nothing was measured."""
        typical = self.typical
        if typical is None:
            return None
        free = [max(typical - elapsed, 0.0) for elapsed in running]
        free += [0.0] * max(slots - len(free), 0)
        heapq.heapify(free)
        for _ in range(ahead):  # each picture ahead takes the first renderer free, for `typical`
            heapq.heappush(free, heapq.heappop(free) + typical)
        return free[0]

    def waiting_text(self, running: Sequence[float], ahead: int, slots: int) -> str:
        """What a waiting visitor reads: pictures before theirs, and the measured estimate."""
        before = len(running) + ahead
        noun = "picture is" if before == 1 else "pictures are"
        text = f"waiting for the renderer: {before} {noun} before yours"
        seconds = self.wait(running, ahead, slots)
        typical = self.typical
        if seconds is None or typical is None:
            return f"{text}; no estimate yet (no picture has been drawn on this server)"
        count = self.measured
        text += (
            f"; about {_duration(seconds)} (a picture here takes {_duration(typical)}, the "
            f"median of the last {count})"
        )
        late = [e for e in running if e > typical]
        if late:
            text += f"; the one being drawn has taken {_duration(max(late))} so far"
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(round(seconds), 1)} s"
    return f"{seconds / 60:.0f} min"


def now() -> float:
    return time.monotonic()

"""The renderer's `progress(phase, step, total)` shown as one bar per phase in the page."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lmd.web.stop import RenderStopped

PHASES = {
    "loading": "loading the models (the first picture with these settings)",
    "boxes": "drawing each object on its own",
    "overall": "drawing the whole picture",
}
"""What the page calls the controller's phases; other phases show under their own name."""

STEPLESS = {"loading"}
"""Phases with no steps to count: the bar shows their name only."""
DECODE = "decoding the picture"
PLANNING = "asking the LLM for a layout"


class PhaseProgress:
    """Adapts the renderer's callback to a `gr.Progress` (`report((step, total), desc=...)`).

    Each phase gets its own bar, named for people; when the last phase's steps are done the
    bar says the picture is being decoded (the controller's last, stepless phase). While the
    picture waits for a renderer, `waiting(text)` shows where it stands. Once `stop` is set,
    the next report raises `RenderStopped` (the render stops between two steps).
    """

    def __init__(self, report: Callable[..., Any], stop: threading.Event | None = None) -> None:
        self.report = report
        self.stop = stop

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def planning(self) -> None:
        self.report(0.0, desc=PLANNING, unit="steps")

    def waiting(self, text: str) -> None:
        """The picture waits for a renderer; `text` says how long, as far as is known."""
        if self.stopped():
            raise RenderStopped()
        self.report(0.0, desc=text, unit="steps")

    def __call__(self, phase: str, step: int, total: int) -> None:
        if self.stopped():
            raise RenderStopped()
        label = PHASES.get(phase, phase)
        if phase in STEPLESS:
            self.report(0.0, desc=label, unit="steps")
            return
        self.report((step, total), desc=label, unit="steps")
        if phase == "overall" and step >= total:
            self.report(0.0, desc=DECODE, unit="steps")

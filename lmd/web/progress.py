"""The renderer's `progress(phase, step, total)` shown as one bar per phase in the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    bar says the picture is being decoded (the controller's last, stepless phase).
    """

    def __init__(self, report: Callable[..., Any]) -> None:
        self.report = report

    def planning(self) -> None:
        self.report(0.0, desc=PLANNING, unit="steps")

    def __call__(self, phase: str, step: int, total: int) -> None:
        label = PHASES.get(phase, phase)
        if phase in STEPLESS:
            self.report(0.0, desc=label, unit="steps")
            return
        self.report((step, total), desc=label, unit="steps")
        if phase == "overall" and step >= total:
            self.report(0.0, desc=DECODE, unit="steps")

"""`WebLimits`: what one visitor of a shared `lmd web` may ask of the server.

Each limit is an `lmd web` option with the default below; a request past one is refused with
one line that says which limit and what to do, before anything is drawn or replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from lmd.conversation import Session
from lmd.layouts import Layout, LmdError
from lmd.layouts.model import MAX_BOXES
from lmd.settings import MAX_STEPS, more_than, setting, whole_number


class LimitError(LmdError):
    """A request asks more than this server allows one visitor."""


@dataclass(frozen=True)
class WebLimits:
    """The limits of one `lmd web` server; each field is declared with its `lmd web` flag
    (`lmd.cli.web` makes the options from these declarations)."""

    max_boxes: int = setting(
        MAX_BOXES, "--max-boxes", "Objects in one picture (the LLM is asked for no more).",
        metavar="N", rule=whole_number(1, 10_000),
    )  # fmt: skip
    max_canvas: int = setting(
        4096, "--max-canvas", "A layout canvas's side in pixels (the table, an opened "
        "session).", metavar="PIXELS", rule=whole_number(8, 1_000_000),
    )  # fmt: skip
    max_turns: int = setting(
        200, "--max-turns", "Turns in one conversation, an opened session's included.",
        metavar="N", rule=whole_number(1, 1_000_000),
    )  # fmt: skip
    max_steps: int = setting(
        100, "--max-steps", "Denoising steps a visitor may choose.", metavar="N",
        rule=whole_number(1, MAX_STEPS),
    )  # fmt: skip
    max_waiting: int = setting(
        16, "--max-waiting", "Pictures waiting for a renderer; more are refused as busy.",
        metavar="N", rule=whole_number(1, 1_000_000),
    )  # fmt: skip
    max_upload_mb: float = setting(
        2.0, "--max-upload-mb", "Size of an uploaded session file, in MB.", metavar="MB",
        rule=more_than(0),
    )  # fmt: skip
    cache_minutes: float = setting(
        60.0, "--cache-minutes", "Copies of pictures and sessions the page served are deleted "
        "this old.", metavar="MINUTES", rule=more_than(0),
    )  # fmt: skip

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = f.metadata["setting"].problem(getattr(self, f.name))
            if problem is not None:
                raise ValueError(f"`{f.name}` {problem}")

    @property
    def cache_seconds(self) -> int:
        """Age in seconds at which Gradio's copies of served files are deleted."""
        return max(1, round(self.cache_minutes * 60))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    def check_layout(self, layout: Layout) -> None:
        """Refuse a layout with more objects or a larger canvas than allowed."""
        if len(layout.boxes) > self.max_boxes:
            raise LimitError(
                f"the layout has {len(layout.boxes)} objects; this server draws at most "
                f"{self.max_boxes} in one picture: remove some rows"
            )
        side = max(layout.width, layout.height)
        if side > self.max_canvas:
            raise LimitError(
                f"the layout's canvas is {layout.width} x {layout.height} px; this server "
                f"takes canvases of at most {self.max_canvas} px a side"
            )

    def check_session(self, session: Session, name: str) -> None:
        """Refuse a session file (`name`, as the visitor knows it) past any limit."""
        if len(session.turns) > self.max_turns:
            raise LimitError(
                f"{name} has {len(session.turns)} turns; this server opens sessions of at most "
                f"{self.max_turns} turns"
            )
        for number, turn in enumerate(session.turns, 1):
            try:
                self.check_layout(turn.layout)
            except LimitError as e:
                raise LimitError(f"{name}, turn {number}: {e}") from None

    def check_turns(self, turns: int) -> None:
        """Refuse a new turn in a conversation that already has `turns`."""
        if turns >= self.max_turns:
            raise LimitError(
                f"this conversation has {turns} turns, the most this server keeps: download "
                "the session if you want it, then Start over"
            )

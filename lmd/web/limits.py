"""`WebLimits`: what one visitor of a shared `lmd web` may ask of the server.

Each limit is an `lmd web` option with the default below; a request past one is refused with
one line that says which limit and what to do, before anything is drawn or replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from lmd.conversation import Session
from lmd.layouts import Layout, LmdError
from lmd.layouts.model import MAX_BOXES


class LimitError(LmdError):
    """A request asks more than this server allows one visitor."""


@dataclass(frozen=True)
class WebLimits:
    """The limits of one `lmd web` server (the CLI flag of each in brackets)."""

    max_boxes: int = MAX_BOXES
    """Objects in one picture (`--max-boxes`); the planner asks the LLM for no more."""
    max_canvas: int = 4096
    """A layout's canvas side in pixels, in the table or an opened session (`--max-canvas`)."""
    max_turns: int = 200
    """Turns one conversation keeps, an opened session's included (`--max-turns`)."""
    max_steps: int = 100
    """Denoising steps a visitor may choose in Settings (`--max-steps`)."""
    max_waiting: int = 16
    """Pictures waiting for a renderer; one more is refused as "busy" (`--max-waiting`)."""
    max_upload_mb: float = 2.0
    """Size of an uploaded session file, in MB (`--max-upload-mb`)."""
    cache_seconds: int = 3600
    """Age at which Gradio's copies of pictures and sessions are deleted (`--cache-minutes`)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"`{f.name}` must be more than 0, not {value!r}")

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

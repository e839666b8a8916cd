"""What the page shows, as plain data: chat messages, the layout table, pictures, thumbnails.

Nothing here imports gradio, so it is tested without a server. `layout_from_table` reads the
hand-edited table back through `lmd.layouts.parse`, which clips boxes the way it clips an LLM's.
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from PIL import Image

from lmd.conversation import Session, Turn, is_manual
from lmd.conversation.manager import REROLL_REQUEST
from lmd.conversation.summary import anchor_note
from lmd.layouts import Layout, LayoutParseError, LayoutWarning, draw, parse

COLUMNS = ["name", "x", "y", "w", "h"]
"""The layout table's columns: the object's name and its box in pixels on the canvas."""

DISPLAY_SIZE = 512
"""Pictures smaller than this are enlarged (nearest neighbour) before boxes are drawn on them,
so the names stay readable on tiny test models."""

_warnings_lock = threading.Lock()


def request_text(turn: Turn) -> str:
    """What the user did in `turn`, as the chat shows it."""
    if is_manual(turn):
        return "(edited the layout by hand)"
    if turn.reply is None and turn.request == REROLL_REQUEST:
        return "(new seed)"
    return turn.request


def outcome_text(turn: Turn) -> str:
    """The agent's answer: the summary, how many objects were drawn or reused, and which kept
    the look of an earlier turn."""
    return f"{turn.summary} ({turn.generated} drawn, {turn.reused} reused{anchor_note(turn)})"


def chat_messages(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The conversation up to the current turn, as chat messages (role, content)."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages.append({"role": "user", "content": request_text(turn)})
        messages.append({"role": "assistant", "content": outcome_text(turn)})
    return messages


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else round(float(v), 2)


def table_rows(layout: Layout | None) -> list[list[Any]]:
    """One row per box: name, x, y, w, h (pixels on the layout's canvas)."""
    if layout is None:
        return []
    return [[b.name, _number(b.x), _number(b.y), _number(b.w), _number(b.h)] for b in layout.boxes]


def _cell_number(value: Any, row: int, name: str, column: str) -> float:
    if isinstance(value, bool):
        value = None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise LayoutParseError(f"row {row} ({name}): {column} must be a number, not {value!r}")
    return number


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == ""


def layout_from_table(
    rows: Sequence[Sequence[Any]],
    background: str,
    negative: str,
    width: int = 512,
    height: int = 512,
) -> tuple[Layout, list[str]]:
    """The layout the table describes, and the notes about boxes clipped or dropped.

    Rows left entirely blank are skipped (that is how a row is deleted). Raises
    `LayoutParseError` naming the row and column of a cell that is not right.
    """
    objects = []
    for i, row in enumerate(rows, 1):
        cells = list(row) + [None] * (len(COLUMNS) - len(row))
        if all(_blank(c) for c in cells):
            continue
        name = "" if _blank(cells[0]) else str(cells[0]).strip()
        if not name:
            raise LayoutParseError(f"row {i} has no name: say what the box holds")
        coords = [
            _cell_number(v, i, repr(name), c) for v, c in zip(cells[1:5], COLUMNS[1:], strict=True)
        ]
        if coords[2] <= 0 or coords[3] <= 0:
            raise LayoutParseError(f"row {i} ({name!r}): w and h must be more than 0")
        objects.append({"name": name, "box": coords})
    if not str(background or "").strip():
        raise LayoutParseError("the background is empty: describe the scene")
    text = json.dumps(
        {
            "objects": objects,
            "background": background,
            "negative": negative or "",
            "width": width,
            "height": height,
        }
    )
    # `warnings.catch_warnings` swaps process-wide state: one reader at a time.
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayoutWarning)
        layout = parse(text, width, height)
    notes = [str(w.message) for w in caught if issubclass(w.category, LayoutWarning)]
    return layout, notes


def _display(image: Image.Image) -> Image.Image:
    small = max(image.size)
    if small >= DISPLAY_SIZE:
        return image
    scale = DISPLAY_SIZE / small
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.NEAREST)


def picture(turn: Turn | None, show_boxes: bool) -> Image.Image | None:
    """The turn's picture, with its layout drawn over it when `show_boxes`.

    Without a picture (a session made on another machine) the layout alone is drawn.
    """
    if turn is None:
        return None
    image = turn.image
    if image is None:
        return draw(turn.layout)
    if not show_boxes:
        return image
    return draw(turn.layout, _display(image))


def thumbnails(session: Session) -> list[tuple[Image.Image, str]]:
    """Every saved turn (undone ones too) as (picture, caption); the current one is marked."""
    items = []
    for i, turn in enumerate(session.turns):
        image = turn.image  # read from disk on each access: once here
        if image is None:
            image = draw(turn.layout)
        mark = " (now)" if i == session.cursor else " (undone)" if i > session.cursor else ""
        items.append((image, f"{i + 1}. {request_text(turn)}{mark}"))
    return items


def canvas_text(layout: Layout | None) -> str:
    """How to read the table: the canvas the boxes are on."""
    width, height = (layout.width, layout.height) if layout is not None else (512, 512)
    return (
        f"Canvas {width} x {height} px: x, y is a box's top-left corner, w, h its size. "
        "Clear a row to remove it; + adds one."
    )


def status_text(turn: Turn | None, notes: Sequence[str] = ()) -> str:
    """The line under the picture: the current turn's outcome and any notes."""
    if turn is None:
        return "Say what to draw, or fill in the table and press Apply."
    lines = [outcome_text(turn), *notes]
    return "\n\n".join(lines)

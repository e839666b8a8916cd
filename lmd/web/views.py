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
from typing import TYPE_CHECKING, Any

from PIL import Image

from lmd.conversation import Session, Turn, is_manual
from lmd.conversation.manager import REROLL_REQUEST
from lmd.conversation.summary import anchor_note
from lmd.layouts import Layout, LayoutParseError, LayoutWarning, draw, parse

if TYPE_CHECKING:
    from lmd.web.state import Failure

COLUMNS = ["name", "x", "y", "w", "h"]
"""The layout table's columns: the object's name and its box in pixels on the canvas."""

DEFAULT_CANVAS = (512, 512)
"""The canvas (width, height) of a layout drawn by hand before there is a picture."""

DISPLAY_SIZE = 512
"""Pictures smaller than this are enlarged (nearest neighbour) before boxes are drawn on them,
so the names stay readable on tiny test models."""
THUMBNAIL_SIZE = 160
"""The longest side of a picture in the strip of turns (drawn at this size, whatever the
canvas: a session of large canvases costs no more memory than one of small ones)."""

EDITED = "(edited the layout by hand)"
NEW_SEED = "(new seed)"
"""What the chat shows for a turn drawn from the table (Apply) and for a new seed."""
NOT_DONE = "Not done: {message}"
"""The agent's answer to an action that failed (the conversation is as it was)."""

_warnings_lock = threading.Lock()


def request_text(turn: Turn) -> str:
    """What the user did in `turn`, as the chat shows it."""
    if is_manual(turn):
        return EDITED
    if turn.reply is None and turn.request == REROLL_REQUEST:
        return NEW_SEED
    return turn.request


def outcome_text(turn: Turn) -> str:
    """The agent's answer: the summary, how many objects were drawn or reused, and which kept
    the look of an earlier turn."""
    return f"{turn.summary} ({turn.generated} drawn, {turn.reused} reused{anchor_note(turn)})"


def chat_messages(turns: Sequence[Turn], failure: Failure | None = None) -> list[dict[str, str]]:
    """The conversation up to the current turn, as chat messages (role, content), and the
    last action's failure after it: what was asked and why it was not done."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages.append({"role": "user", "content": request_text(turn)})
        messages.append({"role": "assistant", "content": outcome_text(turn)})
    if failure is not None:
        if failure.request:
            messages.append({"role": "user", "content": failure.request})
        messages.append({"role": "assistant", "content": NOT_DONE.format(message=failure.message)})
    return messages


def table_cells(table: Any) -> list[list[Any]]:
    """The table's rows, whichever form Gradio hands them in (list, DataFrame, dict)."""
    if table is None:
        return []
    if isinstance(table, dict):
        table = table.get("data", [])
    if hasattr(table, "values") and hasattr(table, "columns"):
        table = table.values.tolist()
    return [list(row) for row in table]


START = (
    "Say what to draw; or draw boxes on the blank canvas, name them, describe the background "
    "and press Apply."
)


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
        return sketch(turn.layout, DISPLAY_SIZE)
    if not show_boxes:
        return image
    return draw(turn.layout, _display(image))


def _thumbnail(image: Image.Image) -> Image.Image:
    scale = THUMBNAIL_SIZE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def sketch(layout: Layout, size: int) -> Image.Image:
    """The layout drawn alone, its longest side at most `size` pixels."""
    scale = min(1.0, size / max(layout.width, layout.height))
    if scale < 1.0:
        width = max(1, round(layout.width * scale))
        height = max(1, round(layout.height * scale))
        layout = layout.scaled(width, height)
    return draw(layout)


def thumbnails(session: Session) -> list[tuple[Image.Image, str]]:
    """Every saved turn (undone ones too) as (picture, caption); the current one is marked."""
    items = []
    for i, turn in enumerate(session.turns):
        image = turn.image  # read from disk on each access: once here
        image = sketch(turn.layout, THUMBNAIL_SIZE) if image is None else _thumbnail(image)
        mark = " (now)" if i == session.cursor else " (undone)" if i > session.cursor else ""
        items.append((image, f"{i + 1}. {request_text(turn)}{mark}"))
    return items


def canvas_text(layout: Layout | None) -> str:
    """How to edit the layout: the boxes on the picture, and the table's numbers."""
    width, height = (layout.width, layout.height) if layout is not None else DEFAULT_CANVAS
    return (
        "Drag a box to move it, a corner to resize it. The box tool under the picture (or C) "
        "draws a new box to name; double-click a box to rename it; Delete (or the bin) removes "
        f"the selected one. The table has the exact numbers on the {width} x {height} px "
        "canvas (x, y: top-left corner; w, h: size); a cell's ⋮ menu adds or deletes a row."
    )


def status_text(
    turn: Turn | None, notes: Sequence[str] = (), failure: Failure | None = None
) -> str:
    """The line under the picture: the current turn's outcome, any notes, and the last
    action's failure."""
    lines = [outcome_text(turn) if turn is not None else START, *notes]
    if failure is not None:
        lines.append(f"**{NOT_DONE.format(message=failure.message)}**")
    return "\n\n".join(lines)

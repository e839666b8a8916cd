"""The layout drawn on the picture, for the box editor, and the editor's boxes read back.

The editor (`gradio_image_annotation.image_annotator`) shows an image with boxes a person
drags, resizes, draws and deletes; its value is `{"image": ..., "boxes": [{"label", "xmin",
"ymin", "xmax", "ymax", "color"}]}` in the image's pixels. The image is the picture scaled to
the layout's canvas (or a blank canvas of its size), so those pixels are the layout's own.

The table stays the place for exact numbers: the editor works in whole pixels, so reading
it back keeps each row whose box it did not change as the table had it, and only what the
person moved, resized, renamed, drew or deleted changes. Nothing here imports gradio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PIL import Image

from lmd.layouts.draw import PALETTE

BLANK = (245, 245, 245)
"""The canvas colour where there is no picture yet (the colour `lmd.layouts.draw` uses)."""

Key = tuple[str, int, int, int, int]
"""A box as the editor has it: name, xmin, ymin, xmax, ymax in whole pixels."""


def canvas(picture: Image.Image | None, width: int, height: int) -> Image.Image:
    """`picture` scaled to the layout's `width` x `height` canvas, or a blank canvas."""
    if picture is None:
        return Image.new("RGB", (width, height), BLANK)
    picture = picture.convert("RGB")
    if picture.size == (width, height):
        return picture
    return picture.resize((width, height), Image.Resampling.BICUBIC)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _name(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def row_key(row: Sequence[Any]) -> Key | None:
    """How the editor shows a table row, or None when the row is no box (yet): a blank or
    half-typed row, or a box with no area, stays in the table but is not drawn."""
    cells = list(row) + [None] * (5 - len(row))
    x, y, w, h = (_number(c) for c in cells[1:5])
    if x is None or y is None or w is None or h is None or w <= 0 or h <= 0:
        return None
    return (_name(cells[0]), round(x), round(y), round(x + w), round(y + h))


def drawn_key(box: dict[str, Any]) -> Key:
    """An editor box as a `Key` (corners in either order)."""
    x0, x1 = sorted((round(float(box["xmin"])), round(float(box["xmax"]))))
    y0, y1 = sorted((round(float(box["ymin"])), round(float(box["ymax"]))))
    return (_name(box.get("label")), x0, y0, x1, y1)


def _row(key: Key) -> list[Any]:
    name, x0, y0, x1, y1 = key
    return [name, x0, y0, x1 - x0, y1 - y0]


def editor_value(rows: Sequence[Sequence[Any]], image: Any) -> dict[str, Any]:
    """The editor's value: `image` with a box for each table row that is one."""
    boxes = []
    for row in rows:
        key = row_key(row)
        if key is None:
            continue
        name, x0, y0, x1, y1 = key
        color = PALETTE[len(boxes) % len(PALETTE)]  # as `lmd.layouts.draw` colours them
        boxes.append({"label": name, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1,
                      "color": color})  # fmt: skip
    return {"image": image, "boxes": boxes}


def rows_after_drawing(
    rows: Sequence[Sequence[Any]], drawn: Sequence[dict[str, Any]]
) -> list[list[Any]] | None:
    """The table once the editor's boxes `drawn` are read into it; None if they change nothing.

    Each drawn box is matched to the row it came from: first a row it equals (kept exactly
    as typed), then one of the same name (moved or resized), then one with the same box
    (renamed). Rows no box matches were deleted; boxes no row matches were drawn anew and
    go at the end in the order they were drawn. Rows that are no box stay where they are,
    blank ones go; a box with no area yet (being drawn) is not read.
    """
    keys = [row_key(row) for row in rows]
    left = [k for k in map(drawn_key, drawn) if k[1] < k[3] and k[2] < k[4]]  # not mid-draw
    if sorted(k for k in keys if k is not None) == sorted(left):
        return None
    found: dict[int, Key] = {}
    for same in (lambda r, d: r == d, lambda r, d: r[0] == d[0], lambda r, d: r[1:] == d[1:]):
        for i, key in enumerate(keys):
            if key is None or i in found:
                continue
            match = next((d for d in left if same(key, d)), None)
            if match is not None:
                found[i] = match
                left.remove(match)
    out: list[list[Any]] = []
    for i, (row, key) in enumerate(zip(rows, keys, strict=True)):
        if key is None:
            if any(_name(cell) for cell in row):  # a blank row goes: a box fills the table
                out.append(list(row))
        elif i in found and found[i][1:] == key[1:]:  # the same box, perhaps renamed
            out.append([found[i][0], *list(row)[1:]])
        elif i in found:
            out.append(_row(found[i]))
    # The editor puts each new box first: the last of them was drawn first.
    out.extend(_row(key) for key in reversed(left))
    return out

"""`draw`: a layout's boxes, names, background and negative prompt over a picture or a canvas.

Boxes get a dark edge under their colour so they show on light and dark pictures alike;
repeated names are numbered ("a cat 1", "a cat 2"); labels are moved until they do not
overlap; the background and negative prompts are written on a dark band along the bottom.
Labels use fonts that have their characters (`lmd.layouts.fonts`), so any script renders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from lmd.layouts.fonts import Font, font_runs, has_glyphs, warn_missing
from lmd.layouts.model import Layout
from PIL import Image, ImageDraw

PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]  # fmt: skip
EDGE = (0, 0, 0, 220)
BAND = (0, 0, 0, 150)
TEXT = (255, 255, 255)
Rect = tuple[float, float, float, float]
Runs = list[tuple[str, Font]]


def labels(layout: Layout) -> list[str]:
    """Each box's label: its name, numbered when the name occurs more than once."""
    counts = Counter(box.name for box in layout.boxes)
    seen: Counter[str] = Counter()
    out = []
    for box in layout.boxes:
        seen[box.name] += 1
        out.append(f"{box.name} {seen[box.name]}" if counts[box.name] > 1 else box.name)
    return out


def caption_lines(layout: Layout) -> list[str]:
    """The lines along the bottom: the background prompt and, when set, the negative prompt."""
    lines = [f"background: {layout.background}"]
    if layout.negative.strip():
        lines.append(f"negative: {layout.negative}")
    return lines


def draw(
    layout: Layout, image: Image.Image | None = None, *, fonts: Sequence[str | Path] = ()
) -> Image.Image:
    """Return a copy of `image` (or a blank canvas) with the layout drawn on it.

    Boxes are scaled from the layout canvas to the image. `fonts` are font files to try
    before the ones `lmd.layouts.fonts` finds.
    """
    if image is None:
        canvas = Image.new("RGB", (layout.width, layout.height), (245, 245, 245))
    else:
        canvas = image.convert("RGB")
    sx, sy = canvas.width / layout.width, canvas.height / layout.height
    pen = ImageDraw.Draw(canvas, "RGBA")
    size = max(10, round(min(canvas.size) / 32))
    line = max(2, round(min(canvas.size) / 170))
    rects = []
    for i, box in enumerate(layout.boxes):
        color = PALETTE[i % len(PALETTE)]
        rect = (box.x * sx, box.y * sy, (box.x + box.w) * sx, (box.y + box.h) * sy)
        x0, y0, x1, y1 = rect
        pen.rectangle(rect, fill=(*color, 40))
        pen.rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), outline=EDGE, width=2)  # dark outside
        pen.rectangle(rect, outline=color, width=line)
        inner = (x0 + line, y0 + line, x1 - line, y1 - line)
        if inner[0] < inner[2] and inner[1] < inner[3]:
            pen.rectangle(inner, outline=EDGE, width=1)  # and inside: the colour shows on any
        rects.append(rect)
    placed: list[Rect] = []
    missing: list[str] = []  # characters no font has: named in one warning
    for i, (text, rect) in enumerate(zip(labels(layout), rects, strict=True)):
        runs = font_runs(text, size, fonts, missing)
        spot = place_label(pen, runs, rect, placed, canvas.size, line)
        placed.append(spot)
        _label(pen, spot, runs, PALETTE[i % len(PALETTE)])
    _captions(pen, caption_lines(layout), size, canvas.size, fonts, missing)
    warn_missing(missing)
    return canvas


def text_box(pen: ImageDraw.ImageDraw, runs: Runs) -> Rect:
    """The bounding box of `runs` drawn one after another from (0, 0) (one run: the font's own
    box; several: on a shared baseline at y 0)."""
    if len(runs) == 1:
        text, font = runs[0]
        return pen.textbbox((0, 0), text, font=font)
    x, top, bottom = 0.0, 0.0, 0.0
    for text, font in runs:
        _, t, _, b = pen.textbbox((x, 0), text, font=font, anchor="ls")
        top, bottom = min(top, t), max(bottom, b)
        x += pen.textlength(text, font=font)
    return 0.0, top, x, bottom


def draw_runs(pen: ImageDraw.ImageDraw, xy: tuple[float, float], runs: Runs, fill) -> None:
    """Draw `runs` with the top-left of their `text_box` at `xy`."""
    left, top, _, _ = text_box(pen, runs)
    x, y = xy[0] - left, xy[1] - top
    if len(runs) == 1:
        pen.text((x, y), runs[0][0], font=runs[0][1], fill=fill)
        return
    for text, font in runs:
        pen.text((x, y), text, font=font, fill=fill, anchor="ls")
        x += pen.textlength(text, font=font)


def label_size(pen: ImageDraw.ImageDraw, runs: Runs) -> tuple[float, float]:
    left, top, right, bottom = text_box(pen, runs)
    return right - left + 4, bottom - top + 4


def place_label(
    pen: ImageDraw.ImageDraw,
    runs: Runs,
    box: Rect,
    placed: Sequence[Rect],
    canvas: tuple[int, int],
    line: int,
) -> Rect:
    """Where a box's label goes: inside its top-left corner, else top-right, above it, further
    down inside it or below it: the first spot that overlaps no label already `placed`."""
    w, h = label_size(pen, runs)
    x0, y0, x1, y1 = box
    left = x0 + line
    spots = [(left, y0 + line), (x1 - w - line, y0 + line), (x0, y0 - h - 1)]
    spots += [(left, y0 + line + k * (h + 2)) for k in range(1, int((y1 - y0) // (h + 2)))]
    spots.append((x0, y1 + 1))
    first = None
    for x, y in spots:
        x = min(max(x, 0), max(canvas[0] - w, 0))
        y = min(max(y, 0), max(canvas[1] - h, 0))
        rect = (x, y, x + w, y + h)
        first = first or rect
        if not any(_overlap(rect, other) for other in placed):
            return rect
    return first


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label(pen: ImageDraw.ImageDraw, rect: Rect, runs: Runs, color) -> None:
    pen.rectangle(rect, fill=(*color, 215), outline=EDGE)
    draw_runs(pen, (rect[0] + 2, rect[1] + 2), runs, TEXT)


def _captions(pen, lines: list[str], size: int, canvas: tuple[int, int], fonts, missing) -> None:
    width, height = canvas
    step = size + 4
    top = height - step * len(lines) - 4
    pen.rectangle((0, top, width, height), fill=BAND)
    for k, text in enumerate(lines):
        runs = _fit(pen, font_runs(text, size, fonts, missing), width - 8)
        pen.text((4, top + 2 + k * step), runs[0][0], font=runs[0][1], fill=TEXT)
        x = 4 + pen.textlength(runs[0][0], font=runs[0][1])
        for part, font in runs[1:]:  # on the first run's baseline
            baseline = top + 2 + k * step + runs[0][1].getmetrics()[0]
            pen.text((x, baseline), part, font=font, fill=TEXT, anchor="ls")
            x += pen.textlength(part, font=font)


def _fit(pen: ImageDraw.ImageDraw, runs: Runs, width: float) -> Runs:
    """`runs`, cut with an ellipsis where they would run past `width` pixels."""

    def length(rs: Runs) -> float:
        return sum(pen.textlength(text, font=font) for text, font in rs)

    if length(runs) <= width:
        return runs
    runs = list(runs)
    dots = "…" if has_glyphs(runs[-1][1], "…") else "..."
    while runs and length([*runs[:-1], (runs[-1][0] + dots, runs[-1][1])]) > width:
        text, font = runs[-1]
        if len(text) > 1:
            runs[-1] = (text[:-1], font)
        elif len(runs) > 1:
            runs.pop()
        else:
            break
    text, font = runs[-1]
    return [*runs[:-1], (text.rstrip() + dots, font)]

"""`draw`: boxes and captions painted on a blank canvas or over an image."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from layouts.model import Layout

PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]  # fmt: skip


def draw(layout: Layout, image: Image.Image | None = None) -> Image.Image:
    """Return a copy of `image` (or a blank canvas) with the layout's boxes and captions drawn.

    Boxes are scaled from the layout canvas to the image; the background caption is written
    along the bottom edge.
    """
    if image is None:
        canvas = Image.new("RGB", (layout.width, layout.height), (245, 245, 245))
    else:
        canvas = image.convert("RGB")
    sx, sy = canvas.width / layout.width, canvas.height / layout.height
    pen = ImageDraw.Draw(canvas, "RGBA")
    size = max(10, round(min(canvas.size) / 32))
    font = ImageFont.load_default(size=size)
    line = max(2, round(min(canvas.size) / 170))
    for i, box in enumerate(layout.boxes):
        color = PALETTE[i % len(PALETTE)]
        x0, y0, x1, y1 = box.x * sx, box.y * sy, (box.x + box.w) * sx, (box.y + box.h) * sy
        pen.rectangle((x0, y0, x1, y1), outline=color, width=line, fill=(*color, 40))
        _label(pen, (x0 + line, y0 + line), box.name, font, color)
    _label(pen, (4, canvas.height - size - 10), layout.background, font, (60, 60, 60))
    return canvas


def _label(pen: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, color) -> None:
    left, top, right, bottom = pen.textbbox(xy, text, font=font)
    pen.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(*color, 200))
    pen.text(xy, text, font=font, fill=(255, 255, 255))

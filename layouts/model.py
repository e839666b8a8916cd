"""`Box` and `Layout`: the data model every stage shares."""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_CANVAS = 16384
"""The largest canvas side a layout may have (pixels)."""
MAX_BOXES = 30
"""The most objects the planner accepts in one layout (`Planner(max_boxes=)`) and `lmd web`
draws (`--max-boxes`): GLIGEN's 30 grounding slots, far above the 5 of any LMD benchmark
layout. A layout file for `lmd render` may hold more."""
COORDINATE_SCALE = 8
"""Box coordinates lie within this many canvas sizes of the canvas; beyond is not a layout."""


def trim_name(name: str) -> str:
    """`name` on one line (NFC), cut after its last letter, digit or combining mark that
    belongs to one ("a cat." -> "a cat", "बिल्ली" kept whole).

    Trailing punctuation and symbols would merge with the `, ` that joins names in the
    overall prompt (CLIP's tokenizer reads `.,` as one token), so they go. A name may end in
    a mark (Devanagari vowel signs, "İ" once lower-cased as the tokenizer does): the overall
    prompt puts a space before the next comma for such names (`lmd.controller.captions`).
    """
    v = " ".join(unicodedata.normalize("NFC", name).split())
    end = len(v)
    while end and not _ends_word(v[:end]):
        end -= 1
    return v[:end]


def _ends_word(v: str) -> bool:
    """`v` ends in a letter or digit, or in combining marks that follow one."""
    i = len(v)
    while i and unicodedata.category(v[i - 1])[0] == "M":
        i -= 1
    return i > 0 and _word_char(v[i - 1])


def _word_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LN"


def _num(v: float) -> str:
    """Shortest exact text for a coordinate: `12` rather than `12.0`."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Box(BaseModel):
    """One captioned object box, in pixels on the layout canvas: top-left (x, y), size (w, h)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    x: float
    y: float
    w: float = Field(gt=0)
    h: float = Field(gt=0)

    @field_validator("name")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = trim_name(v)
        if not v:
            raise ValueError("an object name needs a letter or a digit")
        return v

    @field_validator("x", "y", "w", "h")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("box coordinates must be finite numbers")
        return v

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    @property
    def area(self) -> float:
        return self.w * self.h

    def scaled(self, sx: float, sy: float) -> Box:
        return self.model_copy(
            update={"x": self.x * sx, "y": self.y * sy, "w": self.w * sx, "h": self.h * sy}
        )

    def iou(self, other: Box) -> float:
        ax0, ay0, ax1, ay1 = self.xyxy
        bx0, by0, bx1, by1 = other.xyxy
        iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
        ih = max(0.0, min(ay1, by1) - max(ay0, by0))
        inter = iw * ih
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_llm_text(self) -> str:
        coords = ", ".join(_num(v) for v in (self.x, self.y, self.w, self.h))
        return f"({self.name!r}, [{coords}])"


def box_out_of_scale(
    name: str, xyxy: tuple[float, float, float, float], width: int, height: int
) -> str | None:
    """Why a box's corners are too far off a `width` x `height` canvas to be a layout, or None."""
    x0, y0, x1, y1 = xyxy
    limit_x, limit_y = COORDINATE_SCALE * width, COORDINATE_SCALE * height
    if all(abs(v) <= limit_x for v in (x0, x1)) and all(abs(v) <= limit_y for v in (y0, y1)):
        return None
    corners = ", ".join(f"{v:g}" for v in xyxy)
    return (
        f"box {name[:60]!r} reaches [{corners}], far outside the {width}x{height} canvas; "
        "coordinates are pixels on the canvas"
    )


class Layout(BaseModel):
    """Captioned boxes on a `width` x `height` canvas, a background caption, a negative prompt."""

    model_config = ConfigDict(frozen=True)

    boxes: list[Box] = Field(default_factory=list)
    background: str
    negative: str = ""
    width: int = Field(default=512, gt=0, le=MAX_CANVAS)
    height: int = Field(default=512, gt=0, le=MAX_CANVAS)

    @field_validator("background", "negative")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if any("\ud800" <= c <= "\udfff" for c in v):
            raise ValueError("a prompt holds a lone surrogate, which is not text")
        return " ".join(v.split())

    @field_validator("background")
    @classmethod
    def _describes(cls, v: str) -> str:
        if not any(c.isalnum() for c in v):
            raise ValueError("the background prompt needs a letter or a digit; describe the scene")
        return v

    @model_validator(mode="after")
    def _near_canvas(self) -> Layout:
        for box in self.boxes:
            problem = box_out_of_scale(box.name, box.xyxy, self.width, self.height)
            if problem:
                raise ValueError(problem)
        return self

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.boxes]

    def scaled(self, width: int, height: int) -> Layout:
        """The same layout on another canvas size (boxes scale with it)."""
        sx, sy = width / self.width, height / self.height
        boxes = [b.scaled(sx, sy) for b in self.boxes]
        return self.model_copy(update={"boxes": boxes, "width": width, "height": height})

    def to_llm_text(self) -> str:
        """The template's own format, which `lmd.layouts.parse` reads back."""
        objects = ", ".join(b.to_llm_text() for b in self.boxes)
        return (
            f"Objects: [{objects}]\n"
            f"Background prompt: {self.background}\n"
            f"Negative prompt: {self.negative}"
        )

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Layout:
        return cls.model_validate(json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write the layout as JSON atomically (a crash never leaves half a file)."""
        from lmd.layouts.io import atomic_write_text

        return atomic_write_text(path, self.to_json() + "\n")

"""`parse`: read an LLM's layout answer (template format or JSON) into a `Layout`."""

from __future__ import annotations

import math
import re
import warnings

from lmd.layouts.errors import LayoutParseError, LayoutWarning
from lmd.layouts.literal import read_literal
from lmd.layouts.mapping import layout_fields, object_fields, read_json, show
from lmd.layouts.model import MAX_CANVAS, Box, Layout, box_out_of_scale
from pydantic import ValidationError

# Typography LLMs (and non-English keyboards) put where ASCII is meant.
_TRANSLATE = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
        "\uff1a": ":", "\uff0c": ",", "\uff08": "(", "\uff09": ")",
        "\uff3b": "[", "\uff3d": "]", "\u3010": "[", "\u3011": "]",
        "\u00a0": " ", "\u3000": " ",
    }
)  # fmt: skip
_OBJECTS = re.compile(r"\bobjects?\s*:", re.I)
_BACKGROUND = re.compile(r"background(?:\s+prompt)?\s*:", re.I)
_NEGATIVE = re.compile(r"negative(?:\s+prompt)?\s*:", re.I)
# A fence line. Spaces, not \s: a \s* could run across lines, and trying it at every line
# start is what made the earlier pattern quadratic in a run of blank lines.
_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t\r]*$", re.M)
_WORDS = re.compile(r"\w+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NO_OBJECTS = {"no objects", "no object", "none", "nothing", "n a", "na", "empty"}
_EMPTY_NEGATIVE = {"", "none", "n/a", "na", "null", "nothing", "-", "[]", "''", '""'}


def parse(text: str, width: int = 512, height: int = 512) -> Layout:
    """Read `text` as a layout on a `width` x `height` canvas.

    Accepts the template format (`Objects: [('a cat', [x, y, w, h]), ...]` with
    `Background prompt:` and `Negative prompt:` lines) and JSON. Boxes reaching off the canvas
    are clipped and boxes left with no area dropped, each with a `LayoutWarning`.
    Raises `LayoutParseError`, whose message says what was wrong, for anything else.
    """
    if not isinstance(text, str) or not text.strip():
        raise LayoutParseError(
            "the text is empty", fix="answer with 'Objects: [...]' and the two prompt lines"
        )
    _check_text(text, "the text")
    raw, offset = _without_fences(text)
    norm = raw.translate(_TRANSLATE)  # one char for one char: positions in both agree
    try:
        if not _BACKGROUND.search(norm) and "{" in norm:
            return _from_mapping(read_json(norm), width, height)
        return _from_template(raw, norm, width, height)
    except LayoutParseError as e:
        raise _moved(e, offset) from None


def _moved(error: LayoutParseError, offset: int | None) -> LayoutParseError:
    """`error` with its position `offset` characters further (unknown when `offset` is)."""
    if error.position is not None:
        error.position = None if offset is None else error.position + offset
    return error


def _check_text(text: str, what: str) -> None:
    """A lone surrogate (from a `\\ud800` escape or a broken decoder) is not text."""
    bad = _SURROGATE.search(text)
    if bad:
        raise LayoutParseError(
            f"{what} holds a lone surrogate (U+{ord(bad.group()):04X}) at character "
            f"{bad.start()}, which is not text"
        )


def _without_fences(text: str) -> tuple[str, int | None]:
    """`text` without markdown fence lines (```, ```python, ...), and where it starts in
    `text` (None when fences were taken out: positions in it no longer map back)."""
    if "```" in text:
        return _FENCE.sub("", text).strip(), None
    stripped = text.strip()
    return stripped, len(text) - len(text.lstrip())


def _from_mapping(data: dict, width: int, height: int) -> Layout:
    objects, background, negative, w, h = layout_fields(data)
    if not isinstance(background, str) or not background.strip():
        raise LayoutParseError("the JSON has no 'background' text")
    _check_text(background, "the background")
    if isinstance(negative, str):
        _check_text(negative, "the negative prompt")
    width = _canvas(width if w is None else w, "width")
    height = _canvas(height if h is None else h, "height")
    return _build(objects, background, negative, width, height)


def _from_template(raw: str, text: str, width: int, height: int) -> Layout:
    """Find the parts in the normalised `text`; take the free-text prompts from `raw`."""
    bg = _BACKGROUND.search(text)
    if bg is None:
        raise LayoutParseError(
            "no 'Background prompt:' line",
            fix="end the answer with a 'Background prompt: ...' line and a "
            "'Negative prompt: ...' line",
        )
    obj = _OBJECTS.search(text, 0, bg.start())
    part = text[obj.end() if obj else 0 : bg.start()]
    segment = part.strip()
    start = (obj.end() if obj else 0) + len(part) - len(part.lstrip())
    neg = _NEGATIVE.search(text, bg.end())
    line_end = text.find("\n", bg.end()) % (len(text) + 1)
    background = raw[bg.end() : min(line_end, neg.start() if neg else line_end)].strip()
    negative = _line_after(raw, neg.end()) if neg is not None else ""
    try:
        objects = _read_objects(segment)
    except LayoutParseError as e:
        raise _moved(e, start) from None
    return _build(objects, background, negative, width, height)


def _line_after(text: str, pos: int) -> str:
    end = text.find("\n", pos)
    return text[pos : end if end >= 0 else len(text)].strip()


def _says_no_objects(segment: str) -> bool:
    """The object part says "no objects", "none", "n/a", ..., or is an empty list ("[]")."""
    words = []
    for m in _WORDS.finditer(segment):
        words.append(m.group().lower())
        if len(words) > 2:
            return False
    if words:
        return " ".join(words) in _NO_OBJECTS
    marks = "".join(segment.split())
    balanced = marks.count("[") == marks.count("]") and marks.count("(") == marks.count(")")
    return len(marks) <= 16 and balanced  # "[]", "-", "[ ]." but not "[[[[[[..."


def _read_objects(segment: str) -> list:
    if _says_no_objects(segment):
        return []
    start = segment.find("[")
    paren = segment.find("(")
    if 0 <= paren < start or (start < 0 and paren >= 0):
        # Tuples without the surrounding list: ('a cat', [1, 2, 3, 4]), ('a dog', [...])
        try:
            objects, _ = read_literal(f"[{segment[paren:]}]", 0)
        except LayoutParseError as e:  # a position in `segment`, not in the bracketed copy
            raise _moved(e, paren - 1) from None
        return _checked_list(objects)
    if start < 0:
        raise LayoutParseError(
            f"could not find the object list in {show(segment[:60])}",
            fix="write them as Objects: [('a cat', [x, y, w, h]), ...]",
        )
    objects, _ = read_literal(segment, start)
    return _checked_list(objects)


def _checked_list(objects: object) -> list:
    if not isinstance(objects, list):
        raise LayoutParseError("the objects must be a list: [('a cat', [x, y, w, h]), ...]")
    return objects


def _build(objects: object, background: str, negative: object, width: int, height: int) -> Layout:
    if not isinstance(objects, list | tuple):
        raise LayoutParseError("the objects must be a list: [('a cat', [x, y, w, h]), ...]")
    if isinstance(negative, list | tuple):
        negative = ", ".join(str(n) for n in negative)
    if negative is None or str(negative).strip().lower() in _EMPTY_NEGATIVE:
        negative = ""
    boxes = []
    for i, item in enumerate(objects, 1):
        name, coords = _object(item, i)
        box = _clip(name, coords, width, height)
        if box is not None:
            boxes.append(box)
    background = background.strip()
    if not background:
        raise LayoutParseError(
            "the 'Background prompt:' line is empty", fix="describe the scene on it"
        )
    return _validated(
        Layout, boxes=boxes, background=background, negative=str(negative),
        width=width, height=height,
    )  # fmt: skip


def _validated(model: type[Box] | type[Layout], what: str = "", **fields: object):
    """`model(**fields)`; a validation error becomes a `LayoutParseError` saying what was wrong."""
    try:
        return model(**fields)
    except ValidationError as e:
        msg = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
        raise LayoutParseError(f"not a valid layout: {what}{msg}") from None


def _object(item: object, i: int) -> tuple[str, list[float]]:
    """One object as (name, [x, y, w, h]) from a tuple, a flat 5-tuple or a mapping."""
    if isinstance(item, dict):
        name, coords = object_fields(item, i)
    elif isinstance(item, list | tuple) and len(item) == 2:
        name, coords = item
    elif isinstance(item, list | tuple) and len(item) == 5:
        name, coords = item[0], list(item[1:])
    else:
        raise LayoutParseError(f"object {i} is {show(item)}; expected ('name', [x, y, w, h])")
    if not isinstance(name, str) or not name.strip():
        raise LayoutParseError(f"object {i} has no name: {show(item)}")
    _check_text(name, f"the name of object {i}")
    if (
        not isinstance(coords, list | tuple)
        or len(coords) != 4
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords)
    ):
        raise LayoutParseError(
            f"object {i} ({show(name)}) needs a box of 4 numbers [x, y, w, h], not {show(coords)}"
        )
    values = [float(c) for c in coords]
    if not all(math.isfinite(v) for v in values):
        raise LayoutParseError(f"object {i} ({show(name)}) has a box that is not finite numbers")
    return name, values


def _clip(name: str, coords: list[float], width: int, height: int) -> Box | None:
    x, y, w, h = coords
    problem = box_out_of_scale(show(name), (x, y, x + w, y + h), width, height)
    if problem:
        raise LayoutParseError(problem)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    shown = f"{show(name)} [{', '.join(f'{c:g}' for c in coords)}]"
    if x1 <= x0 or y1 <= y0:
        warnings.warn(
            f"dropped box {shown}: it has no area on the {width}x{height} canvas",
            LayoutWarning,
            stacklevel=5,
        )
        return None
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return _validated(Box, f"object {show(name)}: ", name=name, x=x, y=y, w=w, h=h)
    warnings.warn(
        f"clipped box {shown} to the {width}x{height} canvas: "
        f"[{x0:g}, {y0:g}, {x1 - x0:g}, {y1 - y0:g}]",
        LayoutWarning,
        stacklevel=5,
    )
    return _validated(Box, f"object {show(name)}: ", name=name, x=x0, y=y0, w=x1 - x0, h=y1 - y0)


def _canvas(value: object, what: str) -> int:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 1 <= value <= MAX_CANVAS:
        raise LayoutParseError(
            f"the canvas {what} must be a number from 1 to {MAX_CANVAS}, not {show(value)}"
        )
    return int(value)

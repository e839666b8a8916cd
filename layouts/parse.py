"""`parse`: read an LLM's layout answer (template format or JSON) into a `Layout`."""

from __future__ import annotations

import json
import re
import warnings

from pydantic import ValidationError

from layouts.errors import LayoutParseError, LayoutWarning
from layouts.literal import read_literal
from layouts.model import Box, Layout

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
_FENCE = re.compile(r"^\s*```[\w-]*\s*$", re.M)
_OBJECTS = re.compile(r"\bobjects?\s*:", re.I)
_BACKGROUND = re.compile(r"background(?:\s+prompt)?\s*:", re.I)
_NEGATIVE = re.compile(r"negative(?:\s+prompt)?\s*:", re.I)
_NO_OBJECTS = re.compile(r"^\W*(?:no objects?|none|nothing|n/?a|empty)?\W*$", re.I)
_EMPTY_NEGATIVE = {"", "none", "n/a", "na", "null", "nothing", "-", "[]", "''", '""'}
_NAME_KEYS = ("name", "caption", "label", "phrase", "object")
_BOX_KEYS = ("box", "bbox", "bounding_box", "xywh")


def parse(text: str, width: int = 512, height: int = 512) -> Layout:
    """Read `text` as a layout on a `width` x `height` canvas.

    Accepts the template format (`Objects: [('a cat', [x, y, w, h]), ...]` with
    `Background prompt:` and `Negative prompt:` lines) and JSON. Boxes reaching off the canvas
    are clipped and boxes left with no area dropped, each with a `LayoutWarning`.
    Raises `LayoutParseError`, whose message says what was wrong, for anything else.
    """
    if not isinstance(text, str) or not text.strip():
        raise LayoutParseError("the answer is empty; expected 'Objects: [...]' and prompt lines")
    raw = _FENCE.sub("", text).strip()
    norm = raw.translate(_TRANSLATE)  # one char for one char: positions in both agree
    if not _BACKGROUND.search(norm) and "{" in norm:
        data = _read_json(norm)
        return _from_mapping(data, width, height)
    return _from_template(raw, norm, width, height)


def _read_json(text: str) -> dict:
    start = text.index("{")
    try:
        data = json.loads(text[start : text.rindex("}") + 1])
    except (json.JSONDecodeError, ValueError):
        data, _ = read_literal(text, start)
    if not isinstance(data, dict):
        raise LayoutParseError("expected a JSON object with 'boxes' and 'background'")
    return data


def _from_mapping(data: dict, width: int, height: int) -> Layout:
    get = {str(k).lower().replace(" ", "_"): v for k, v in data.items()}
    objects = _first(get, ("boxes", "objects"), [])
    background = _first(get, ("background", "background_prompt", "bg_prompt"), None)
    negative = _first(get, ("negative", "negative_prompt"), "")
    if not isinstance(background, str) or not background.strip():
        raise LayoutParseError("the JSON has no 'background' text")
    width = _canvas(get.get("width", width), "width")
    height = _canvas(get.get("height", height), "height")
    return _build(objects, background, negative, width, height)


def _from_template(raw: str, text: str, width: int, height: int) -> Layout:
    """Find the parts in the normalised `text`; take the free-text prompts from `raw`."""
    bg = _BACKGROUND.search(text)
    if bg is None:
        raise LayoutParseError(
            "no 'Background prompt:' line; end the answer with a 'Background prompt: ...' "
            "line and a 'Negative prompt: ...' line"
        )
    obj = _OBJECTS.search(text, 0, bg.start())
    segment = text[obj.end() if obj else 0 : bg.start()].strip()
    neg = _NEGATIVE.search(text, bg.end())
    line_end = text.find("\n", bg.end()) % (len(text) + 1)
    background = raw[bg.end() : min(line_end, neg.start() if neg else line_end)].strip()
    negative = _line_after(raw, neg.end()) if neg is not None else ""
    return _build(_read_objects(segment), background, negative, width, height)


def _line_after(text: str, pos: int) -> str:
    end = text.find("\n", pos)
    return text[pos : end if end >= 0 else len(text)].strip()


def _read_objects(segment: str) -> list:
    if _NO_OBJECTS.match(segment):
        return []
    start = segment.find("[")
    paren = segment.find("(")
    if 0 <= paren < start or (start < 0 and paren >= 0):
        # Tuples without the surrounding list: ('a cat', [1, 2, 3, 4]), ('a dog', [...])
        segment, start = f"[{segment[paren:]}]", 0
    if start < 0:
        raise LayoutParseError(
            f"could not find the object list in {segment[:60]!r}; "
            "expected Objects: [('a cat', [x, y, w, h]), ...]"
        )
    objects, _ = read_literal(segment, start)
    if not isinstance(objects, list):
        raise LayoutParseError("the objects must be a list: [('a cat', [x, y, w, h]), ...]")
    return objects


def _build(objects: object, background: str, negative: object, width: int, height: int) -> Layout:
    if not isinstance(objects, list | tuple):
        raise LayoutParseError("the objects must be a list: [('a cat', [x, y, w, h]), ...]")
    if negative is None or str(negative).strip().lower() in _EMPTY_NEGATIVE:
        negative = ""
    if isinstance(negative, list | tuple):
        negative = ", ".join(str(n) for n in negative)
    boxes = []
    for i, item in enumerate(objects, 1):
        name, coords = _object(item, i)
        box = _clip(name, coords, width, height)
        if box is not None:
            boxes.append(box)
    background = background.strip()
    if not background:
        raise LayoutParseError("the 'Background prompt:' line is empty; describe the scene")
    try:
        return Layout(
            boxes=boxes, background=background, negative=str(negative),
            width=width, height=height,
        )  # fmt: skip
    except ValidationError as e:
        raise LayoutParseError(f"not a valid layout: {e.errors()[0]['msg']}") from None


def _object(item: object, i: int) -> tuple[str, list[float]]:
    """One object as (name, [x, y, w, h]) from a tuple, a flat 5-tuple or a mapping."""
    if isinstance(item, dict):
        low = {str(k).lower(): v for k, v in item.items()}
        name = _first(low, _NAME_KEYS, None)
        coords = _first(low, _BOX_KEYS, None)
        if coords is None and all(k in low for k in "xywh"):
            coords = [low[k] for k in "xywh"]
    elif isinstance(item, list | tuple) and len(item) == 2:
        name, coords = item
    elif isinstance(item, list | tuple) and len(item) == 5:
        name, coords = item[0], list(item[1:])
    else:
        raise LayoutParseError(f"object {i} is {item!r}; expected ('name', [x, y, w, h])")
    if not isinstance(name, str) or not name.strip():
        raise LayoutParseError(f"object {i} has no name: {item!r}")
    if (
        not isinstance(coords, list | tuple)
        or len(coords) != 4
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords)
    ):
        raise LayoutParseError(f"object {i} ({name!r}) needs a box of 4 numbers [x, y, w, h]")
    return name, [float(c) for c in coords]


def _clip(name: str, coords: list[float], width: int, height: int) -> Box | None:
    x, y, w, h = coords
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    shown = f"{name!r} [{', '.join(f'{c:g}' for c in coords)}]"
    if x1 <= x0 or y1 <= y0:
        warnings.warn(
            f"dropped box {shown}: it has no area on the {width}x{height} canvas",
            LayoutWarning,
            stacklevel=5,
        )
        return None
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return Box(name=name, x=x, y=y, w=w, h=h)  # untouched: keep the numbers as given
    warnings.warn(
        f"clipped box {shown} to the {width}x{height} canvas: "
        f"[{x0:g}, {y0:g}, {x1 - x0:g}, {y1 - y0:g}]",
        LayoutWarning,
        stacklevel=5,
    )
    return Box(name=name, x=x0, y=y0, w=x1 - x0, h=y1 - y0)


def _first(mapping: dict, keys: tuple[str, ...], default: object) -> object:
    for k in keys:
        if k in mapping:
            return mapping[k]
    return default


def _canvas(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise LayoutParseError(f"the canvas {what} must be a positive number, not {value!r}")
    return int(value)

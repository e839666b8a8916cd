"""Layouts written as mappings (JSON files, JSON replies): read them strictly, keys checked.

A key the reader does not know is an error naming it and the closest known key (`"boxs"`:
did you mean `"boxes"`?), so a typo never silently drops the boxes or the negative prompt.
"""

from __future__ import annotations

import difflib
import json
import reprlib

from lmd.layouts.errors import LayoutParseError
from lmd.layouts.literal import read_literal, to_number

_BOXES = ("boxes", "objects")
_BACKGROUND = ("background", "background_prompt", "bg_prompt")
_NEGATIVE = ("negative", "negative_prompt")
_CANVAS = ("width", "height")
LAYOUT_KEYS = (*_BOXES, *_BACKGROUND, *_NEGATIVE, *_CANVAS)
NAME_KEYS = ("name", "caption", "label", "phrase", "object")
BOX_KEYS = ("box", "bbox", "bounding_box", "xywh")
_SIDES = {"x": "x", "y": "y", "w": "w", "h": "h", "width": "w", "height": "h"}
OBJECT_KEYS = (*NAME_KEYS, *BOX_KEYS, *_SIDES)

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40
_short.maxlist = _short.maxtuple = _short.maxdict = 5
_short.maxlevel = 3


def show(value: object) -> str:
    """A short repr of a value from a reply, for error messages (never the whole reply)."""
    return _short.repr(value)


def read_json(text: str) -> dict:
    """The mapping that starts at the first `{` of `text` (JSON, else a Python literal)."""
    start = text.index("{")
    try:
        data = json.loads(
            text[start : text.rindex("}") + 1],
            parse_int=to_number,
            parse_float=to_number,
            parse_constant=_no_constant,
        )
    except LayoutParseError:
        raise
    except (ValueError, RecursionError) as json_error:  # not JSON: the forgiving reader
        try:
            data, _ = read_literal(text, start)
        except LayoutParseError as literal_error:
            raise _first_problem(json_error, literal_error, start) from None
    if not isinstance(data, dict):
        raise LayoutParseError("expected a JSON object with 'boxes' and 'background'")
    return data


def _first_problem(
    json_error: Exception, literal_error: LayoutParseError, start: int
) -> LayoutParseError:
    """Of the two readers' failures, the one that stopped first in the text (the JSON
    decoder's, a missing comma say, rather than where the forgiving reader gave up later)."""
    if not isinstance(json_error, json.JSONDecodeError) or literal_error.position is None:
        return literal_error
    position = start + json_error.pos
    if position >= literal_error.position:
        return literal_error
    reason = json_error.msg[:1].lower() + json_error.msg[1:]  # "expecting ',' delimiter"
    snippet = text_near(json_error.doc, json_error.pos)
    return LayoutParseError(
        f"{reason} (near {snippet!r})", fix=literal_error.fix, position=position, reason=reason
    )


def text_near(text: str, pos: int, width: int = 20) -> str:
    """A few characters of `text` around `pos`, for a message."""
    return text[max(0, pos - width // 2) : pos + width // 2]


def _no_constant(name: str) -> object:
    raise LayoutParseError(f"{name} is not a number a box can have")


def layout_fields(data: dict) -> tuple[object, object, object, object, object]:
    """(objects, background, negative, width, height) of a layout mapping; None where absent."""
    get = _keys(data, LAYOUT_KEYS, "in the layout")
    return (
        _first(get, _BOXES, []),
        _first(get, _BACKGROUND, None),
        _first(get, _NEGATIVE, ""),
        get.get("width"),
        get.get("height"),
    )


def object_fields(item: dict, i: int) -> tuple[object, object]:
    """(name, [x, y, w, h]) of an object written as a mapping."""
    low = _keys(item, OBJECT_KEYS, f"in object {i}")
    name = _first(low, NAME_KEYS, None)
    coords = _first(low, BOX_KEYS, None)
    sides = {_SIDES[k]: v for k, v in low.items() if k in _SIDES}
    if coords is None and len(sides) == 4:
        coords = [sides[k] for k in "xywh"]
    return name, coords


def _keys(data: dict, known: tuple[str, ...], where: str) -> dict:
    """`data` with keys lower-cased (spaces as `_`); an unknown key raises, naming the closest."""
    out = {}
    for key, value in data.items():
        norm = str(key).lower().replace(" ", "_")
        if norm not in known:
            close = difflib.get_close_matches(norm, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            raise LayoutParseError(f"unknown key {show(key)} {where}; {hint}")
        out[norm] = value
    return out


def _first(mapping: dict, keys: tuple[str, ...], default: object) -> object:
    for k in keys:
        if k in mapping:
            return mapping[k]
    return default

"""A reader for Python/JSON literals (lists, tuples, dicts, strings, numbers, None).

It never evaluates anything: text an LLM wrote is data. It forgives what LLMs do to literals:
trailing commas, `null`/`None`, `true`/`True`, an apostrophe inside a single-quoted string
(`'a dog's toy'`), and text after the literal. It refuses, as a `LayoutParseError`, what no
layout holds: nesting deeper than `MAX_DEPTH`, numbers longer than `MAX_NUMBER_CHARS` and
numbers that are not finite.
"""

from __future__ import annotations

import math
import re

from lmd.layouts.errors import LayoutParseError

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_]+")
_SPACES = re.compile(r"\s*")
_PLAIN = {q: re.compile(rf"[^{q}\\\n]+") for q in "'\""}
_CONSTANTS = {
    "None": None, "null": None, "True": True, "true": True, "False": False, "false": False,
}  # fmt: skip
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/"}
_HEX = set("0123456789abcdefABCDEF")
_CLOSERS = {"[": "]", "(": ")", "{": "}"}
_NON_FINITE = {"nan", "inf", "infinity"}
MAX_DEPTH = 32
"""A layout nests three deep ([('a cat', [x, y, w, h])]); far deeper is not a layout."""
MAX_NUMBER_CHARS = 40
"""A coordinate has a few digits; thousands of them are not a coordinate."""
# After a closing quote only these may follow (skipping spaces); anything else means the
# quote was an apostrophe inside the string.
_AFTER_STRING = set(",:)]}")


def read_literal(text: str, pos: int = 0) -> tuple[object, int]:
    """Read one literal starting at `text[pos]` (after spaces); return it and the end position."""
    return _Reader(text).value(pos)


def to_number(s: str) -> int | float:
    """The number written `s` (a JSON or Python numeral); too long or not finite is an error."""
    if len(s) > MAX_NUMBER_CHARS:
        raise LayoutParseError(
            f"a number with {len(s)} characters ({s[:12]}...) is not a coordinate"
        )
    if any(c in s for c in ".eE"):
        value = float(s)
        if not math.isfinite(value):
            raise LayoutParseError(f"the number {s} is out of range")
        return value
    return int(s)


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.depth = 0

    def fail(self, pos: int, what: str) -> LayoutParseError:
        snippet = self.text[max(0, pos - 20) : pos + 20].replace("\n", " ")
        return LayoutParseError(f"{what} (near {snippet!r})", position=pos, reason=what)

    def skip(self, pos: int) -> int:
        return _SPACES.match(self.text, pos).end()

    def value(self, pos: int) -> tuple[object, int]:
        pos = self.skip(pos)
        if pos >= len(self.text):
            raise self.fail(pos, "the text ends where a value was expected")
        ch = self.text[pos]
        if ch in _CLOSERS:
            return self.container(pos)
        if ch in "'\"":
            return self.string(pos)
        m = _NUMBER.match(self.text, pos)
        if m:
            return to_number(m.group()), m.end()
        m = _WORD.match(self.text, pos)
        if m and m.group() in _CONSTANTS:
            return _CONSTANTS[m.group()], m.end()
        if m and m.group().lower() in _NON_FINITE:
            raise self.fail(pos, f"{m.group()} is not a number a box can have")
        raise self.fail(pos, f"unexpected {ch!r}")

    def container(self, pos: int) -> tuple[object, int]:
        if self.depth >= MAX_DEPTH:
            raise self.fail(pos, f"brackets nest more than {MAX_DEPTH} deep")
        self.depth += 1
        try:
            return self._container(pos)
        finally:
            self.depth -= 1

    def _container(self, pos: int) -> tuple[object, int]:
        opener = self.text[pos]
        closer = _CLOSERS[opener]
        items: list[object] = []
        pairs: dict[object, object] = {}
        pos += 1
        while True:
            pos = self.skip(pos)
            if pos >= len(self.text):
                raise self.fail(pos, f"{opener!r} is never closed")
            if self.text[pos] == closer:
                pos += 1
                break
            item, pos = self.value(pos)
            pos = self.skip(pos)
            if opener == "{":
                if pos >= len(self.text) or self.text[pos] != ":":
                    raise self.fail(pos, "expected ':' in a mapping")
                if not isinstance(item, str | int | float | bool | None):
                    raise self.fail(pos, "a mapping key must be a string or number")
                val, pos = self.value(pos + 1)
                pairs[item] = val
                pos = self.skip(pos)
            else:
                items.append(item)
            if pos < len(self.text) and self.text[pos] == ",":
                pos += 1
            elif pos < len(self.text) and self.text[pos] != closer:
                raise self.fail(pos, f"expected ',' or {closer!r}")
        if opener == "{":
            return pairs, pos
        return (items if opener == "[" else tuple(items)), pos

    def string(self, pos: int) -> tuple[str, int]:
        quote = self.text[pos]
        out: list[str] = []
        i = pos + 1
        n = len(self.text)
        plain = _PLAIN[quote]
        closed_at = None  # where the string would have ended but for what follows its quote
        while i < n:
            if m := plain.match(self.text, i):  # a run of ordinary characters at once
                out.append(m.group())
                i = m.end()
                continue
            ch = self.text[i]
            if ch == "\\" and i + 1 < n:
                esc = self.text[i + 1]
                if esc in _SIMPLE_ESCAPES:
                    out.append(_SIMPLE_ESCAPES[esc])
                    i += 2
                    continue
                width = {"x": 2, "u": 4, "U": 8}.get(esc)
                digits = self.text[i + 2 : i + 2 + width] if width else ""
                ok = width and len(digits) == width and all(c in _HEX for c in digits)
                if ok and int(digits, 16) <= 0x10FFFF:
                    out.append(chr(int(digits, 16)))
                    i += 2 + width
                    continue
                out.append(ch)
                i += 1
                continue
            if ch == quote:
                j = self.skip(i + 1)
                if j >= n or self.text[j] in _AFTER_STRING:
                    return "".join(out), i + 1
                # An apostrophe inside the string ("a dog's toy"), not its end; or its end
                # with a comma missing after it, if the string never ends anywhere else.
                closed_at = j if closed_at is None else closed_at
            if ch == "\n":
                raise self._unclosed(closed_at, i, "a string runs past the end of its line")
            out.append(ch)
            i += 1
        raise self._unclosed(closed_at, pos, "a string is never closed")

    def _unclosed(self, closed_at: int | None, pos: int, what: str) -> LayoutParseError:
        """A string that never ends: where a comma is missing after a quote that could have
        ended it, else `what` at `pos`."""
        if closed_at is not None:
            return self.fail(closed_at, "expected ',' after the string")
        return self.fail(pos, what)

"""`load_layout(path)`: read a layout file, and say where it is wrong when it is.

A file that is no text names itself and what it looks like ("a PNG image"); a file that
does not read as a layout names itself, the line and column, and carries that line with a
caret under the spot (`LayoutParseError.details`, shown by the CLI under the error).
"""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path

from lmd.layouts.errors import LayoutParseError
from lmd.layouts.model import Layout
from lmd.layouts.parse import parse

SHOWN_CHARS = 100
"""A line shown under an error is cut to about this many characters around the spot."""
_KINDS = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
)


def load_layout(path: str | Path, width: int = 512, height: int = 512) -> Layout:
    """The layout in the file at `path` (JSON or the planner's text format), on a `width` x
    `height` canvas unless the file says otherwise; `LayoutParseError` naming the file (and,
    where known, the line) when it is not one. A missing file raises `FileNotFoundError`."""
    path = Path(path)
    text = read_text(path)
    try:
        return parse(text, width, height)
    except LayoutParseError as e:
        raise located(e, text, str(path)) from None


def read_text(path: Path) -> str:
    """The file's text: UTF-8 (a byte-order mark is allowed) or UTF-16 with its mark."""
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        kind = next((what for magic, what in _KINDS if data.startswith(magic)), None)
        if kind is None and data[e.start : e.start + 1]:
            kind = f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        raise LayoutParseError(
            f"{str(path)!r} is {kind}, not a layout file; a layout file is text: the JSON "
            "`lmd plan -o` and `lmd render` write (layout.json), or the planner's format"
        ) from None


def located(error: LayoutParseError, text: str, name: str) -> LayoutParseError:
    """`error` about the text of file `name`, naming the file and the line and column of its
    position, with the line and a caret as `details`."""
    if error.position is None:
        found = LayoutParseError(f"{name!r} is not a layout: {error}")
        found.fix = error.fix
        return found
    pos = min(error.position, len(text))
    line_no = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end >= 0 else len(text)].rstrip("\r")
    column = pos - start
    found = LayoutParseError(
        f"{name!r} line {line_no}, column {column + 1}: {error.reason}",
        fix=error.fix, position=pos, reason=error.reason,
    )  # fmt: skip
    found.details = caret_lines(line, column)
    return found


def caret_lines(line: str, column: int) -> tuple[str, str]:
    """`line` (cut around `column` when long) and a caret under that column, indented."""
    first = max(0, column - SHOWN_CHARS // 2)
    shown = line[first : first + SHOWN_CHARS].replace("\t", " ")
    head = "..." if first else ""
    tail = "..." if first + SHOWN_CHARS < len(line) else ""
    width = _width(head + shown[: column - first])
    return (f"  {head}{shown}{tail}", "  " + " " * width + "^")


def _width(text: str) -> int:
    """Terminal columns `text` takes: wide (CJK) characters two, combining marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text.replace("\t", " ")
    )

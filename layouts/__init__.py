"""The layout data model shared by every stage: no torch, no network."""

from layouts.draw import draw
from layouts.errors import LayoutParseError, LayoutWarning, LmdError
from layouts.io import atomic_save_image, atomic_write, atomic_write_text
from layouts.model import Box, Layout
from layouts.parse import parse

__all__ = [
    "Box",
    "Layout",
    "LayoutParseError",
    "LayoutWarning",
    "LmdError",
    "atomic_save_image",
    "atomic_write",
    "atomic_write_text",
    "draw",
    "parse",
]

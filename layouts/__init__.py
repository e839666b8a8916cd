"""The layout data model shared by every stage: no torch, no network."""

from lmd.layouts.draw import draw
from lmd.layouts.errors import FontWarning, LayoutParseError, LayoutWarning, LmdError
from lmd.layouts.files import load_layout
from lmd.layouts.io import atomic_save_image, atomic_write, atomic_write_text
from lmd.layouts.model import Box, Layout
from lmd.layouts.parse import parse

__all__ = [
    "Box",
    "FontWarning",
    "Layout",
    "LayoutParseError",
    "LayoutWarning",
    "LmdError",
    "atomic_save_image",
    "atomic_write",
    "atomic_write_text",
    "draw",
    "load_layout",
    "parse",
]

"""Fonts for `draw`: the first one that has every character of a label, so CJK names render.

Candidates, in order: `$LMD_FONT` (a .ttf/.otf/.ttc path, or several joined by the path
separator), CJK-capable fonts found on this system (well-known paths, then `fc-match`), DejaVu
Sans, and Pillow's own scalable font last. Nothing is shipped or downloaded; on a machine
without any CJK font a label still renders, with the characters Pillow's font lacks as boxes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import weakref
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

FONT_ENV = "LMD_FONT"
SYSTEM_FONTS = (
    # Linux (Debian/Ubuntu/Fedora/Arch packages)
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    # macOS
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/Library/Fonts/Arial Unicode.ttf",
    # Windows
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/YuGothM.ttc",
    "C:/Windows/Fonts/malgun.ttf",
)
LATIN_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "C:/Windows/Fonts/arial.ttf")
_MISSING = "\U0010fffd"  # a private-use code point no font draws: what a missing glyph looks like

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def font_paths(extra: Sequence[str | Path] = ()) -> list[Path]:
    """Font files to try, best first: `extra`, `$LMD_FONT`, system CJK fonts, Latin fonts."""
    named = [Path(p) for p in extra]
    env = os.environ.get(FONT_ENV, "")
    named += [Path(p) for p in env.split(os.pathsep) if p]
    found = [*named, *(Path(p) for p in SYSTEM_FONTS)]
    matched = _fc_match_cjk()
    if matched is not None:
        found.append(matched)
    found += [Path(p) for p in LATIN_FONTS]
    unique: list[Path] = []
    for path in found:
        if path not in unique and path.is_file():
            unique.append(path)
    return unique


@lru_cache(maxsize=1)
def _fc_match_cjk() -> Path | None:
    """fontconfig's best Chinese font, where fontconfig is installed."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        out = subprocess.run(
            [fc_match, "-f", "%{file}", ":lang=zh"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


@lru_cache(maxsize=64)
def _load(path: Path | None, size: int) -> Font:
    if path is None:
        try:
            return ImageFont.load_default(size=size)
        except (TypeError, ValueError, OSError):  # a Pillow without FreeType: the bitmap font
            return ImageFont.load_default()
    return ImageFont.truetype(str(path), size=size)


def _mask(font: Font, text: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(text)
    return mask.size, bytes(mask)


# Per font object (weakly held, so an evicted font's answers go with it): its missing-glyph
# mask, and which characters it draws.
_coverage: weakref.WeakKeyDictionary[Font, tuple[tuple, dict[str, bool]]] = (
    weakref.WeakKeyDictionary()
)


def has_glyphs(font: Font, text: str) -> bool:
    """Whether `font` draws every character of `text` (rather than its missing-glyph box)."""
    if font not in _coverage:
        _coverage[font] = (_mask(font, _MISSING), {})
    missing, covered = _coverage[font]
    for char in set(text):
        if char not in covered:
            covered[char] = char.isspace() or _mask(font, char) != missing
        if not covered[char]:
            return False
    return True


def font_for(text: str, size: int, extra: Sequence[str | Path] = ()) -> Font:
    """The first candidate font of `size` that has all of `text`; Pillow's own font otherwise."""
    for path in font_paths(extra):
        try:
            font = _load(path, size)
        except OSError:  # unreadable or not a font: try the next one
            continue
        if has_glyphs(font, text):
            return font
    return _load(None, size)

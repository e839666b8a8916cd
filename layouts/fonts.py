"""Fonts for `draw`: the first one that has every character of a label, so any script renders.

Candidates, in order: `$LMD_FONT` (a .ttf/.otf/.ttc path, or several joined by the path
separator), CJK-capable fonts found on this system (well-known paths, then `fc-match`), DejaVu
Sans, the subsets lmd ships (`fonts/`: common Chinese characters with kana, Devanagari,
Arabic; see `fonts/OFL.txt`), and Pillow's own scalable font last. A label no one font draws
is drawn in runs, each with the first font that has its characters (`font_runs`); characters
no font here has show as boxes, with one `FontWarning` naming them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unicodedata
import warnings
import weakref
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from lmd.layouts.errors import FontWarning
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
SHIPPED_FONTS = tuple(sorted(Path(__file__).with_name("fonts").glob("*-Labels.*")))
"""The subsets lmd ships (made by tools/make_label_fonts.py): after the system's, before
Pillow's own."""
_MISSING = "\U0010fffd"  # a private-use code point no font draws: what a missing glyph looks like

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def font_paths(extra: Sequence[str | Path] = ()) -> list[Path]:
    """Font files to try, best first: `extra`, `$LMD_FONT`, system CJK fonts, Latin fonts, the
    fonts lmd ships."""
    named = [Path(p) for p in extra]
    env = os.environ.get(FONT_ENV, "")
    named += [Path(p) for p in env.split(os.pathsep) if p]
    found = [*named, *(Path(p) for p in SYSTEM_FONTS)]
    matched = _fc_match_cjk()
    if matched is not None:
        found.append(matched)
    found += [Path(p) for p in LATIN_FONTS]
    found += [Path(p) for p in SHIPPED_FONTS]
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


def _fonts(size: int, extra: Sequence[str | Path]) -> list[Font]:
    """The candidate fonts of `size` that load, best first, Pillow's own last."""
    fonts = []
    for path in font_paths(extra):
        try:
            fonts.append(_load(path, size))
        except OSError:  # unreadable or not a font: try the next one
            continue
    return [*fonts, _load(None, size)]


def font_for(text: str, size: int, extra: Sequence[str | Path] = ()) -> Font:
    """The first candidate font of `size` that has all of `text`; Pillow's own font otherwise."""
    fonts = _fonts(size, extra)
    return next((font for font in fonts if has_glyphs(font, text)), fonts[-1])


def font_runs(
    text: str, size: int, extra: Sequence[str | Path] = (), missing: list[str] | None = None
) -> list[tuple[str, Font]]:
    """`text` as (part, font) runs to draw one after another: one run when a font has all of
    it, else each character with the first font that has it (spaces and combining marks stay
    with the run they follow). Characters no font has stay in the run before them, drawn as
    boxes; they are added to `missing`, or without it named in a `FontWarning` (`warn_missing`).
    """
    fonts = _fonts(size, extra)
    whole = next((font for font in fonts if has_glyphs(font, text)), None)
    if whole is not None:
        return [(text, whole)]
    runs: list[tuple[str, Font]] = []
    lacking: list[str] = []
    for char in text:
        joins = char.isspace() or unicodedata.category(char) in ("Mn", "Me", "Cf")
        font = runs[-1][1] if runs and joins else None
        if font is None:
            font = next((f for f in fonts if has_glyphs(f, char)), None)
        if font is None:
            lacking.append(char)
            font = runs[-1][1] if runs else fonts[-1]
        if runs and runs[-1][1] is font:
            runs[-1] = (runs[-1][0] + char, font)
        else:
            runs.append((char, font))
    if missing is None:
        warn_missing(lacking)
    else:
        missing += lacking
    return runs


_warned: set[str] = set()


def warn_missing(chars: Sequence[str]) -> None:
    """One `FontWarning` for the characters no font here draws that no warning named yet in
    this process."""
    new = sorted(set(chars) - _warned, key=ord)
    if not new:
        return
    _warned.update(new)
    words = {unicodedata.name(c, "UNKNOWN").split()[0] for c in new}
    scripts = sorted(w if w == "CJK" else w.title() for w in words)
    shown = "".join(new[:20]) + ("..." if len(new) > 20 else "")
    warnings.warn(
        f"no font here draws {shown!r} ({', '.join(scripts)}): those characters show as empty "
        f"boxes in the layout picture; set {FONT_ENV} to a font file that has them",
        FontWarning,
        stacklevel=3,
    )

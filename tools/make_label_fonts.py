"""Make the font subsets lmd ships for the labels of `layout.png` (layouts/fonts/).

    apt-get download fonts-noto-cjk fonts-noto-core unicode-data
    for f in *.deb; do dpkg-deb -x "$f" debs; done
    pip install fonttools
    python tools/make_label_fonts.py debs

The fonts are Noto (SIL Open Font License 1.1, layouts/fonts/OFL.txt), cut down with fontTools
to what labels need, so the package grows by a few hundred KB:
- CJK (Noto Sans CJK SC): ASCII, CJK punctuation, full-width forms, hiragana and katakana,
  the 1000 most frequent Chinese characters by Unihan's kHanyuPinlu counts (the Xiandai Hanyu
  Pinlu Cidian, about 89% of running modern Chinese text), every character of
  tools/label_words.txt (object, colour, count, place and scene words) and of the planner's
  templates.
- Devanagari (Noto Sans Devanagari): the Devanagari block, with the shaping tables (Hindi,
  Marathi, Nepali).
- Arabic (Noto Sans Arabic): the Arabic block, with the shaping tables (Arabic, Persian, Urdu).
Hangul, Thai and other scripts are not shipped: a label in them draws with a system font
when one has them, else with boxes and one warning (`LMD_FONT` names a font that has them).
"""

from __future__ import annotations

import bz2
import re
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "layouts" / "fonts"
TOP_HANZI = 1000
CJK_SC = 2  # Noto Sans CJK's collection: JP, KR, SC, TC, HK, then the Mono ones


def ranges(*spans: tuple[int, int]) -> set[int]:
    return {c for a, b in spans for c in range(a, b + 1)}


def frequent_hanzi(unihan: Path, n: int) -> list[str]:
    """The `n` most frequent characters by kHanyuPinlu's summed counts."""
    counts: dict[str, int] = {}
    with bz2.open(unihan / "Unihan_Readings.txt.bz2", "rt", encoding="utf-8") as lines:
        for line in lines:
            if "\tkHanyuPinlu\t" in line:
                code, _, value = line.rstrip("\n").split("\t")
                counts[chr(int(code[2:], 16))] = sum(map(int, re.findall(r"\((\d+)\)", value)))
    return sorted(counts, key=lambda c: (-counts[c], c))[:n]


def template_chars() -> set[int]:
    text = "".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "prompts" / "templates").rglob("*.txt")
    )
    return {ord(c) for c in text}


def label_words() -> set[int]:
    text = (Path(__file__).parent / "label_words.txt").read_text(encoding="utf-8")
    return {ord(c) for line in text.splitlines() if not line.startswith("#") for c in line}


def write_subset(font: TTFont, unicodes: set[int], path: Path, shaping: bool = True) -> None:
    """`font` cut to `unicodes`, saved at `path`; without `shaping`, no layout tables (CJK
    labels need none; its vertical and regional alternates would triple the file)."""
    options = subset.Options()
    if not shaping:
        options.layout_features = []
        options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "VORG", "vhea", "vmtx"]
    options.name_IDs = ["*"]  # keep the names: the licence and copyright strings
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.hinting = False  # labels are drawn at 10-32 px, unhinted, anti-aliased
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(unicodes))
    subsetter.subset(font)
    font.save(path)
    print(f"{path.relative_to(ROOT)}: {len(font.getBestCmap())} characters, "
          f"{path.stat().st_size // 1024} KB")  # fmt: skip


def main(debs: Path) -> None:
    noto = debs / "usr/share/fonts/truetype/noto"
    cjk = debs / "usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    OUT.mkdir(exist_ok=True)
    latin = ranges((0x20, 0x7E)) | {0x2026}  # and the ellipsis of a cut caption
    cjk_chars = latin | ranges(
        (0x3000, 0x303F), (0x3041, 0x3096), (0x309B, 0x309F), (0x30A0, 0x30FF), (0xFF01, 0xFF5E)
    )
    cjk_chars |= {ord(c) for c in frequent_hanzi(debs / "usr/share/unicode", TOP_HANZI)}
    cjk_chars |= label_words() | {c for c in template_chars() if c >= 0x2E80}
    write_subset(TTCollection(cjk).fonts[CJK_SC], cjk_chars, OUT / "NotoSansCJKsc-Labels.otf",
                 shaping=False)  # fmt: skip
    devanagari = ranges((0x0900, 0x097F), (0x200C, 0x200D), (0x25CC, 0x25CC)) | {0x20, 0x2026}
    write_subset(TTFont(noto / "NotoSansDevanagari-Regular.ttf"), devanagari,
                 OUT / "NotoSansDevanagari-Labels.ttf")  # fmt: skip
    arabic = ranges((0x0600, 0x06FF), (0x200C, 0x200F)) | {0x20, 0x2026}
    write_subset(TTFont(noto / "NotoSansArabic-Regular.ttf"), arabic,
                 OUT / "NotoSansArabic-Labels.ttf")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""layout.png on a machine without CJK, Devanagari or Arabic fonts: the fonts lmd ships draw
Chinese, Japanese kana, Hindi and Arabic labels; what no font here has is named in one
warning instead of silent empty boxes."""

from __future__ import annotations

import warnings

import pytest
from lmd.layouts import Box, FontWarning, Layout, draw
from lmd.layouts import fonts as fonts_module
from lmd.layouts.fonts import SHIPPED_FONTS, font_runs, has_glyphs

LABELS = {
    "chinese": "一只黑猫",  # frequent characters plus 猫, from the label words
    "template": "桌子上有两个苹果",  # the planner's Chinese example
    "japanese": "ねこ と いぬ",
    "hindi": "बिल्ली और कुत्ता",
    "arabic": "قطة سوداء",
    "mixed": "a cat 猫 2",  # a numbered label: Latin, CJK and digits
}


@pytest.fixture
def bare_machine(monkeypatch):
    """No system fonts at all (no CJK, no DejaVu, no fontconfig), no LMD_FONT."""
    monkeypatch.setattr(fonts_module, "SYSTEM_FONTS", ())
    monkeypatch.setattr(fonts_module, "LATIN_FONTS", ())
    monkeypatch.setattr(fonts_module, "_fc_match_cjk", lambda: None)
    monkeypatch.delenv(fonts_module.FONT_ENV, raising=False)
    monkeypatch.setattr(fonts_module, "_warned", set())


def test_lmd_ships_its_label_fonts_small():
    names = {p.name for p in SHIPPED_FONTS}
    assert names == {
        "NotoSansCJKsc-Labels.otf", "NotoSansDevanagari-Labels.ttf", "NotoSansArabic-Labels.ttf",
    }  # fmt: skip
    assert sum(p.stat().st_size for p in SHIPPED_FONTS) < 600 * 1024
    assert (SHIPPED_FONTS[0].parent / "OFL.txt").read_text().count("SIL OPEN FONT LICENSE") == 1


@pytest.mark.parametrize("script", sorted(LABELS))
def test_every_character_of_these_labels_is_drawn(bare_machine, script):
    text = LABELS[script]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FontWarning)  # a missing glyph would raise here
        runs = font_runs(text, 20)
    assert "".join(part for part, _ in runs) == text
    assert all(has_glyphs(font, part.replace(" ", "")) for part, font in runs if part.strip())


def test_the_labels_are_drawn_not_boxes(bare_machine, monkeypatch):
    one = Layout(boxes=[Box(name=LABELS["hindi"], x=40, y=40, w=400, h=300)], background="x")
    drawn = draw(one).crop((40, 40, 440, 90)).tobytes()
    monkeypatch.setattr(fonts_module, "SHIPPED_FONTS", ())  # as before: Pillow's font only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FontWarning)
        boxes = draw(one).crop((40, 40, 440, 90)).tobytes()
    assert drawn != boxes


def test_a_script_no_font_here_has_is_named_once(bare_machine):
    korean = Layout(boxes=[Box(name="고양이", x=40, y=40, w=200, h=200)], background="a park")
    with pytest.warns(FontWarning, match=r"'고양이' \(Hangul\).*empty boxes.*LMD_FONT"):
        draw(korean)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FontWarning)
        draw(korean)  # said once

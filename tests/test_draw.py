"""layout.png: names in any script, numbered repeats, labels that do not overlap, the negative
prompt, and boxes that show on light and dark pictures."""

from __future__ import annotations

from pathlib import Path

import pytest
from lmd.layouts import Box, Layout, draw
from lmd.layouts import fonts as fonts_module
from lmd.layouts.draw import caption_lines, labels, place_label
from lmd.layouts.fonts import font_for, has_glyphs
from PIL import Image, ImageDraw

# A subset of WenQuanYi Micro Hei (Apache-2.0) with the characters these tests draw.
CJK_FONT = Path(__file__).parent / "data" / "cjk-subset.ttf"
CAT = "一只黑猫"


def layout(*boxes, negative=""):
    return Layout(boxes=[Box(name=n, x=x, y=y, w=w, h=h) for n, x, y, w, h in boxes],
                  background="a park", negative=negative)  # fmt: skip


@pytest.fixture
def no_system_fonts(monkeypatch):
    """A machine without any font file, and lmd without its own: only Pillow's font is left."""
    monkeypatch.setattr(fonts_module, "SYSTEM_FONTS", ())
    monkeypatch.setattr(fonts_module, "LATIN_FONTS", ())
    monkeypatch.setattr(fonts_module, "SHIPPED_FONTS", ())
    monkeypatch.setattr(fonts_module, "_fc_match_cjk", lambda: None)
    monkeypatch.delenv(fonts_module.FONT_ENV, raising=False)


def test_cjk_names_render_with_a_font_that_has_them(no_system_fonts):
    pillow = font_for(CAT, 20)
    assert not has_glyphs(pillow, CAT)  # Pillow's own font draws boxes for these
    chosen = font_for(CAT, 20, [CJK_FONT])
    assert has_glyphs(chosen, CAT) and Path(chosen.path) == CJK_FONT
    assert font_for("a cat", 20, [CJK_FONT]).path == chosen.path  # it has Latin too
    one = layout((CAT, 100, 100, 300, 300))
    with_font = draw(one, fonts=[CJK_FONT]).crop((100, 100, 400, 140))
    without = draw(one).crop((100, 100, 400, 140))
    assert with_font.tobytes() != without.tobytes()


def test_lmd_font_names_a_font_to_use(no_system_fonts, monkeypatch):
    monkeypatch.setenv("LMD_FONT", str(CJK_FONT))
    assert Path(font_for(CAT, 20).path) == CJK_FONT


def test_without_any_cjk_font_a_label_still_draws(no_system_fonts, monkeypatch):
    monkeypatch.setattr(fonts_module, "_warned", set())
    with pytest.warns(fonts_module.FontWarning, match="CJK, Hiragana"):  # and says so, once
        image = draw(layout((CAT, 100, 100, 300, 300), ("ねこ", 0, 0, 50, 50)))
    assert image.size == (512, 512)


def test_a_font_file_that_is_not_a_font_is_skipped(no_system_fonts, tmp_path):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    assert Path(font_for(CAT, 20, [broken, CJK_FONT]).path) == CJK_FONT


def test_repeated_names_are_numbered():
    two_cats = layout(("a cat", 0, 0, 50, 50), ("a dog", 60, 0, 50, 50), ("a cat", 120, 0, 50, 50))
    assert labels(two_cats) == ["a cat 1", "a dog", "a cat 2"]
    assert labels(layout(("a cat", 0, 0, 50, 50))) == ["a cat"]


def test_labels_of_boxes_in_the_same_place_do_not_overlap():
    pen = ImageDraw.Draw(Image.new("RGB", (512, 512)))
    font = font_for("a cat", 16)
    placed = []
    for i in range(6):
        box = (100 + i, 100 + i, 300 + i, 300 + i)
        rect = place_label(pen, [(f"a cat {i + 1}", font)], box, placed, (512, 512), 3)
        assert all(0 <= v <= 512 for v in rect)
        assert not any(
            rect[0] < o[2] and o[0] < rect[2] and rect[1] < o[3] and o[1] < rect[3] for o in placed
        ), f"label {i + 1} overlaps"
        placed.append(rect)


def test_the_negative_prompt_is_shown():
    assert caption_lines(layout(negative="dogs")) == ["background: a park", "negative: dogs"]
    assert caption_lines(layout()) == ["background: a park"]
    with_negative = draw(layout(negative="dogs")).crop((0, 440, 512, 512))
    assert with_negative.tobytes() != draw(layout()).crop((0, 440, 512, 512)).tobytes()


@pytest.mark.parametrize("shade", [0, 255])
def test_boxes_show_on_dark_and_light_pictures(shade):
    picture = Image.new("RGB", (512, 512), (shade, shade, shade))
    out = draw(layout(("a ball", 100, 100, 200, 200)), picture)
    outside, on_line = out.getpixel((98, 200)), out.getpixel((101, 200))
    assert max(outside) < 80  # a dark edge around the colour: it shows on white
    assert max(on_line) > 150 and on_line != (shade,) * 3  # the colour: it shows on black

"""Property tests: the template format round-trips; garbage only raises LayoutParseError."""

import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lmd.layouts import Box, Layout, LayoutParseError, LayoutWarning, atomic_write_text, draw, parse
from lmd.layouts.model import trim_name

# Names may hold quotes, apostrophes, backslashes, brackets and any letter; whitespace is
# collapsed by the model, so generated text is already in that form.
# Typographic quotes and full-width brackets/colons/commas in the object list are read as
# their ASCII forms (LLMs write them for the list's own punctuation), so names avoid them.
_TYPOGRAPHY = (
    "\u2018\u2019\u201a\u2032\u201c\u201d\u201e\u2033"
    "\uff1a\uff0c\uff08\uff09\uff3b\uff3d\u3010\u3011"
)
_name_chars = st.characters(
    blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs"), blacklist_characters=_TYPOGRAPHY
)
# A name ends in a letter or digit (the model trims the rest), so generated names do too.
names = (
    st.lists(st.text(_name_chars, min_size=1, max_size=8), min_size=1, max_size=3)
    .map(" ".join)
    .filter(lambda n: trim_name(n) == n)
)
prompt_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs"), blacklist_characters=":"),
    min_size=1,
    max_size=10,
)
prompts = (
    st.lists(prompt_text, min_size=1, max_size=4)
    .map(" ".join)
    .filter(lambda p: any(c.isalnum() for c in p))
)
coord = st.one_of(
    st.integers(0, 400), st.floats(0, 400, allow_nan=False).map(lambda v: round(v, 3))
)


@st.composite
def layouts(draw_):
    width = draw_(st.sampled_from([256, 512, 768]))
    height = draw_(st.sampled_from([256, 512, 640]))
    boxes = []
    for _ in range(draw_(st.integers(0, 5))):
        x, y = draw_(coord), draw_(coord)
        x, y = min(x, width - 1), min(y, height - 1)
        w = draw_(st.integers(1, int(width - x))) if width - x >= 1 else 1
        h = draw_(st.integers(1, int(height - y))) if height - y >= 1 else 1
        boxes.append(Box(name=draw_(names), x=x, y=y, w=w, h=h))
    negative = draw_(st.one_of(st.just(""), prompts))
    return Layout(
        boxes=boxes,
        background=draw_(prompts),
        negative=negative,
        width=width,
        height=height,
    )


@given(layouts())
@settings(max_examples=300, deadline=None)
def test_parse_reads_back_what_to_llm_text_writes(layout):
    assume(layout.negative.lower() not in {"none", "n/a", "na", "null", "nothing", "-"})
    assume(not any(k in layout.background.lower() for k in ("negative", "background")))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayoutWarning)  # in-canvas boxes need no clipping
        again = parse(layout.to_llm_text(), layout.width, layout.height)
    assert again == layout


@given(st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_random_text_only_ever_raises_layout_parse_error(text):
    _parses_or_raises_layout_parse_error(text)


def _parses_or_raises_layout_parse_error(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayoutWarning)
        try:
            result = parse(text)
        except LayoutParseError:
            return
    assert isinstance(result, Layout)


_fragments = st.sampled_from(
    ["Objects:", "[", "]", "(", ")", "'", '"', ",", "Background prompt:", "Negative prompt:",
     "\n", "{", "}", ":", "None", "1", "-2.5e3", "a cat", "\\", "null", "```"]
)  # fmt: skip


@given(st.lists(_fragments, max_size=40).map("".join))
@settings(max_examples=500, deadline=None)
def test_near_miss_replies_only_ever_raise_layout_parse_error(text):
    _parses_or_raises_layout_parse_error(text)


@pytest.mark.filterwarnings("ignore::lmd.layouts.FontWarning")  # random text: unknown scripts
@given(layouts())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_draw_paints_every_box_on_a_canvas_of_the_layout_size(layout):
    image = draw(layout)
    assert image.size == (layout.width, layout.height)
    if layout.boxes:
        # the first box's outline is in the palette's first colour
        b = layout.boxes[0]
        pixel = image.getpixel((int(b.x), int(b.y + b.h / 2)))
        assert pixel != (245, 245, 245)


def test_draw_over_an_image_scales_boxes_to_it():
    from PIL import Image

    layout = Layout(boxes=[Box(name="a cat", x=256, y=256, w=256, h=256)], background="b")
    base = Image.new("RGB", (128, 128), (0, 0, 0))
    out = draw(layout, base)
    assert out.size == (128, 128)
    assert out.getpixel((64, 100)) != (0, 0, 0)  # left edge of the box, scaled by 1/4
    assert out.getpixel((20, 20)) == (0, 0, 0)
    assert base.getpixel((64, 100)) == (0, 0, 0)  # the input is not painted on


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    from lmd.layouts.io import atomic_write

    target = tmp_path / "layout.json"
    atomic_write_text(target, "old")

    def broken(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.json"]

"""`lmd.layouts.parse` against hostile replies: it raises `LayoutParseError` or returns a valid
layout for every string, in time linear in the string's length."""

import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lmd.layouts import Box, Layout, LayoutParseError, LayoutWarning, parse

TEMPLATE = "Objects: [('{n}', [{x}, {y}, {w}, {h}])]\nBackground prompt: {b}\nNegative prompt: {g}"
JSON = '{{"boxes": [{{"name": "{n}", "box": [{x}, {y}, {w}, {h}]}}], "background": "{b}"}}'


def check_contract(text: str, width: int = 512, height: int = 512) -> Layout | None:
    """Parse `text`: a `LayoutParseError` (None) or a layout that is valid and on the canvas."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayoutWarning)
        try:
            layout = parse(text, width, height)
        except LayoutParseError:
            return None
    assert isinstance(layout, Layout)
    assert Layout.model_validate(layout.model_dump()) == layout
    assert layout.background.strip()
    for box in layout.boxes:
        assert box.name and box.w > 0 and box.h > 0
        assert box.x >= 0 and box.x + box.w <= layout.width
        assert box.y >= 0 and box.y + box.h <= layout.height
    return layout


# --- strategies: what a hostile or broken model sends ------------------------------------
huge_numbers = st.integers(40, 6000).map(lambda n: "9" * n) | st.integers(310, 2000).map(
    lambda n: "1" + "0" * n + ".5"
)
nesting = st.tuples(
    st.sampled_from(["[", "(", "{", '{"a": ', "[(", "{'boxes': [", '{"boxes": [']),
    st.integers(30, 4000),
).map(lambda t: t[0] * t[1])
non_finite = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "inf", "nan", "1e308", "-1e308"]
)
surrogates = st.characters(categories=["Cs"])
long_runs = st.tuples(
    st.sampled_from(list(" \n\t\r[](),'\"{}:`\\.-_#") + ["```\n", "a", "\u3000", "Objects:"]),
    st.integers(500, 20000),
).map(lambda t: t[0] * t[1])
hostile = huge_numbers | nesting | non_finite | surrogates | long_runs
ordinary = st.sampled_from(["a cat", "10", "0", "200.5", "a park", "", "None", "-5", "a dog."])
slot = hostile | ordinary


@st.composite
def hostile_replies(draw_):
    """A template or JSON reply with hostile text in some of its slots, or around it."""
    fill = {k: draw_(slot) for k in "nxywhbg"}
    text = draw_(st.sampled_from([TEMPLATE, JSON])).format(**fill)
    before, after = draw_(st.sampled_from(["", "Sure!\n", "```\n"])), draw_(slot | st.just(""))
    return before + text + after


@given(hostile_replies())
@settings(max_examples=300, deadline=None)
def test_hostile_replies_only_ever_raise_layout_parse_error(text):
    check_contract(text)


labels = st.sampled_from(["Objects:", "Background prompt:"])


@given(st.lists(hostile | ordinary | labels).map("".join))
@settings(max_examples=150, deadline=None)
def test_hostile_fragments_only_ever_raise_layout_parse_error(text):
    check_contract(text)


# --- each kind the fuzzer found, as a regression ----------------------------------------
@pytest.mark.parametrize(
    ("text", "says"),
    [
        (TEMPLATE.format(n="a cat", x="9" * 5000, y=0, w=10, h=10, b="x", g=""), "5000 char"),
        (JSON.format(n="a cat", x="9" * 5000, y=0, w=10, h=10, b="x"), "5000 char"),
        (TEMPLATE.format(n="a cat", x="1" + "0" * 400 + ".0", y=0, w=10, h=10, b="x", g=""), "403"),
        (TEMPLATE.format(n="a cat", x="1e999", y=0, w=10, h=10, b="x", g=""), "out of range"),
        (JSON.format(n="a cat", x=0, y=0, w="NaN", h=10, b="x"), "NaN is not a number"),
        (JSON.format(n="a cat", x=0, y=0, w="Infinity", h=10, b="x"), "Infinity is not"),
        (TEMPLATE.format(n="a cat", x=0, y=0, w="nan", h=10, b="x", g=""), "nan is not"),
        ("Objects: " + "[" * 5000 + "('a cat', [1, 2, 3, 4])\nBackground prompt: x", "nest"),
        ('{"boxes": ' + "[" * 5000 + "]" * 5000 + ', "background": "x"}', "nest"),
        ('{"a": ' * 5000, "nest"),
        (TEMPLATE.format(n="a \ud800 cat", x=0, y=0, w=10, h=10, b="x", g=""), r"U\+D800"),
        (JSON.format(n="a \\ud800 cat", x=0, y=0, w=10, h=10, b="x"), r"U\+D800"),
        (TEMPLATE.format(n="a cat", x="1e308", y=0, w="1e308", h=10, b="x", g=""), "far outside"),
        (JSON.format(n="a cat", x=0, y=0, w=10, h=10, b="x")[:-1] + ', "width": 1e400}', "range"),
        ('{"boxes": [], "background": "x", "height": 1e12}', "from 1 to 16384"),
        ("Objects: []\nBackground prompt: \u2003 \u3000 \u2003", "empty"),
        ("Objects: []\nBackground prompt: !!!", "letter or a digit"),
        ("Objects: [('...', [1, 2, 3, 4])]\nBackground prompt: x", "name needs a letter"),
    ],
    ids=lambda v: v[:30] if isinstance(v, str) else None,
)
def test_what_the_fuzzer_found_is_a_layout_parse_error(text, says):
    with pytest.raises(LayoutParseError, match=says) as info:
        parse(text)
    assert len(str(info.value)) < 400  # one readable line, never the whole reply


def test_error_messages_quote_a_bounded_excerpt_of_a_huge_reply():
    junk = "x" * 100_000
    for text in (
        f"Objects: [('{junk}', [1, 2, 3])]\nBackground prompt: b",
        f"Objects: [['{junk}', '{junk}', '{junk}']]\nBackground prompt: b",
        f'{{"boxes": [{{"name": "a", "box": ["{junk}"]}}], "background": "b"}}',
        f'{{"boxes": [], "background": "b", "width": ["{junk}"]}}',
    ):
        with pytest.raises(LayoutParseError) as info:
            parse(text)
        assert len(str(info.value)) < 400


def test_escapes_past_unicode_and_surrogate_prompts_are_handled():
    layout = parse("Objects: [('a \\UFFFFFFFF cat', [1, 2, 3, 4])]\nBackground prompt: b")
    assert layout.names == ["a \\UFFFFFFFF cat"]  # not a character: kept as written
    with pytest.raises(LayoutParseError, match="lone surrogate"):
        parse("Objects: [('a \\ud800 cat', [1, 2, 3, 4])]\nBackground prompt: b")
    with pytest.raises(ValueError, match="lone surrogate"):
        Layout(background="a park \ud800")
    with pytest.raises(ValueError):
        Layout.from_json('{"boxes": [], "background": "a \\udfff park"}')


def test_coordinates_are_bounded_to_the_canvas_scale_but_near_misses_still_clip():
    with pytest.warns(LayoutWarning, match="clipped"):
        layout = parse("Objects: [('a cat', [-100, 0, 4000, 100])]\nBackground prompt: x")
    assert layout.boxes[0].xyxy == (0, 0, 512, 100)
    with pytest.raises(LayoutParseError, match="far outside the 512x512 canvas"):
        parse("Objects: [('a cat', [0, 0, 5000, 100])]\nBackground prompt: x")
    with pytest.raises(ValueError, match="far outside"):
        Layout(boxes=[Box(name="a cat", x=1e308, y=0, w=10, h=10)], background="x")
    with pytest.raises(ValueError, match="letter or a digit"):
        Layout(background="   ")


def test_names_are_cut_after_their_last_letter_or_digit():
    layout = parse(
        "Objects: [('a cat.', [0, 0, 10, 10]), ('a dog!', [20, 0, 10, 10]), "
        "('a cat (black)', [40, 0, 10, 10]), ('一只猫。', [60, 0, 10, 10]), "
        "('room 101', [80, 0, 10, 10])]\nBackground prompt: a park."
    )
    assert layout.names == ["a cat", "a dog", "a cat (black", "一只猫", "room 101"]
    assert layout.background == "a park."  # prompts keep their punctuation
    assert Box(name="  a  red\tball?! ", x=0, y=0, w=1, h=1).name == "a red ball"


# --- unknown keys (issue 11, item 4) ------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"boxs": [{"name": "a cat", "box": [0, 0, 9, 9]}], "background": "x"}', "'boxes'"),
        ('{"boxes": [], "background": "x", "negatve": "dogs"}', "'negative'"),
        ('{"boxes": [], "background": "x", "heigth": 640}', "'height'"),
        (
            '{"boxes": [{"name": "a", "x": 0, "y": 0, "w": 5, "heigth": 5}], "background": "x"}',
            "'height'",
        ),
        ('{"boxes": [{"name": "a", "bbx": [0, 0, 5, 5]}], "background": "x"}', "'bbox'"),
        ('{"boxes": [], "background": "x", "zzz": 1}', "known keys: boxes"),
    ],
)
def test_unknown_keys_name_the_key_and_the_closest_known_one(text, says):
    with pytest.raises(LayoutParseError, match="unknown key") as info:
        parse(text)
    assert says in str(info.value)


def test_known_key_spellings_are_all_read():
    layout = parse(
        '{"Objects": [{"caption": "a cat", "x": 1, "y": 2, "width": 30, "height": 40}],'
        ' "Background Prompt": "a park", "negative_prompt": "dogs", "width": 640, "height": 480}'
    )
    assert layout.boxes == [Box(name="a cat", x=1, y=2, w=30, h=40)]
    assert (layout.background, layout.negative, layout.width, layout.height) == (
        "a park", "dogs", 640, 480,
    )  # fmt: skip


# --- time linear in the length -----------------------------------------------------------
PADDED = {
    "spaces after the list": lambda n: (
        "Objects: [('a cat', [1, 2, 3, 4])]" + " " * n + "\nBackground prompt: x"
    ),
    "newlines (fence pattern)": lambda n: "Objects: []" + "\n" * n + "Background prompt: x",
    "blank lines in a fence": lambda n: "```" + "\n \n" * n + "```",
    "punctuation (no-objects pattern)": lambda n: (
        "Objects: [" + " " * n + "x\nBackground prompt: y"
    ),
    "brackets and spaces": lambda n: "Objects: " + "[ " * n + "\nBackground prompt: y",
    "spaces in JSON": lambda n: '{"boxes": [' + " " * n + '], "background": "x"}',
    "quotes": lambda n: "Objects: [('a" + "' " * n + "', [1, 2, 3, 4])]\nBackground prompt: x",
    "words without colons": lambda n: "background " * (n // 11) + "Objects: []",
}


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        check_contract(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("kind", list(PADDED))
def test_parse_time_grows_linearly_with_padding(kind):
    small, large = PADDED[kind](10_000), PADDED[kind](40_000)
    t_small, t_large = _seconds(small), _seconds(large)
    # 4x the text: linear is ~4x the time, quadratic ~16x. The floor absorbs timer noise.
    assert t_large <= 8 * max(t_small, 0.0005) + 0.005, (kind, t_small, t_large)

"""layouts.parse: the template format, JSON, and what real LLMs send."""

import json
import warnings
from pathlib import Path

import pytest
from lmd.layouts import Box, Layout, LayoutParseError, LayoutWarning, parse

# Kept in the repository (tests/data/README.md), so every clone runs these tests.
DATA = Path(__file__).resolve().parent / "data" / "lmd_benchmark_gpt-3.5-turbo.json"


def _replies() -> list[tuple[str, str]]:
    data = json.loads(DATA.read_text())
    return [(caption, reply) for caption, replies in data.items() for reply in replies]


def test_every_recorded_gpt35_reply_parses():
    replies = _replies()
    assert len(replies) == 400
    counts = {"without": 0, "boxes": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayoutWarning)
        for caption, reply in replies:
            layout = parse(reply)
            assert layout.background
            if "without" in caption:
                counts["without"] += 1
                excluded = caption.rsplit(" ", 1)[-1]  # "... without cats" -> "cats"
                assert excluded in layout.negative
                assert not any(excluded[:-1] in name for name in layout.names)
            counts["boxes"] += len(layout.boxes)
    assert counts["without"] == 100
    assert counts["boxes"] > 400


def test_template_format_reads_names_boxes_and_prompts():
    layout = parse(
        "Objects: [('a cat', [10, 20, 100, 120]), ('a dog', [200, 20, 100.5, 120])]\n"
        "Background prompt: A realistic park\nNegative prompt: blurry"
    )
    assert layout.names == ["a cat", "a dog"]
    assert layout.boxes[1] == Box(name="a dog", x=200, y=20, w=100.5, h=120)
    assert (layout.background, layout.negative) == ("A realistic park", "blurry")


@pytest.mark.parametrize(
    "text",
    [
        # no "Objects:" prefix (the template ends with it, so replies start at the list)
        "[('a cat', [10, 20, 100, 120])]\nBackground prompt: a park\nNegative prompt: None",
        # markdown fences and chatter before and after
        "Sure! Here it is:\n```python\nObjects: [('a cat', [10, 20, 100, 120])]\n"
        "Background prompt: a park\nNegative prompt:\n```\nLet me know if you need more.",
        # curly quotes and trailing commas
        "Objects: [(\u2018a cat\u2019, [10, 20, 100, 120],),]\nBackground prompt: a park\n",
        # double quotes, tuples without the list brackets, full-width colon
        'Objects: ("a cat", [10, 20, 100, 120])\nBackground prompt\uff1a a park',
        # JSON
        '{"objects": [{"name": "a cat", "box": [10, 20, 100, 120]}], "background": "a park"}',
        '```json\n{"boxes": [{"name": "a cat", "x": 10, "y": 20, "w": 100, "h": 120}],'
        ' "background_prompt": "a park", "negative_prompt": null}\n```',
    ],
)
def test_tolerates_what_llms_send(text):
    layout = parse(text)
    assert layout.boxes == [Box(name="a cat", x=10, y=20, w=100, h=120)]
    assert layout.background == "a park"
    assert layout.negative == ""


@pytest.mark.parametrize("objects", ["[]", "No objects", "None", ""])
def test_empty_object_lists(objects):
    layout = parse(f"Objects: {objects}\nBackground prompt: an empty beach\nNegative prompt: birds")
    assert layout.boxes == []
    assert layout.negative == "birds"


def test_apostrophe_inside_a_single_quoted_name():
    layout = parse("[('a dog's toy', [1, 2, 30, 40])]\nBackground prompt: a room")
    assert layout.names == ["a dog's toy"]


def test_off_canvas_boxes_are_clipped_and_empty_ones_dropped_with_warnings():
    text = (
        "[('a cat', [-10, 400, 100, 200]), ('a ghost', [600, 10, 50, 50]), "
        "('a dog', [0, 0, 0, 10])]\nBackground prompt: a park"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layout = parse(text)
    assert layout.boxes == [Box(name="a cat", x=0, y=400, w=90, h=112)]
    messages = [str(w.message) for w in caught if issubclass(w.category, LayoutWarning)]
    assert len(messages) == 3
    assert "clipped" in messages[0] and "'a cat'" in messages[0]
    assert "dropped" in messages[1] and "'a ghost'" in messages[1]
    assert "dropped" in messages[2] and "'a dog'" in messages[2]
    assert caught[0].filename == __file__  # the warning points at the caller


def test_canvas_size_is_respected():
    layout = parse("[('a tree', [700, 10, 200, 300])]\nBackground prompt: a field", 1024, 768)
    assert (layout.width, layout.height) == (1024, 768)
    assert layout.boxes[0].w == 200


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("I cannot draw that.", "Background prompt"),
        ("[('a cat', [1, 2, 3])]\nBackground prompt: x", "4 numbers"),
        ("[('a cat', [1, 2, 'x', 4])]\nBackground prompt: x", "4 numbers"),
        ("[(42, [1, 2, 3, 4])]\nBackground prompt: x", "no name"),
        ("[('a cat', [1, 2, 3, 4]\nBackground prompt: x", "never closed"),
        ("Objects: a cat somewhere\nBackground prompt: x", "object list"),
        ("[('a cat', [1, 2, 3, 4])]\nBackground prompt:", "empty"),
        ('{"objects": []}', "background"),
    ],
)
def test_unreadable_text_says_what_was_wrong(text, says):
    with pytest.raises(LayoutParseError, match=says):
        parse(text)


def test_never_evaluates_code():
    text = "[('a cat', __import__('os').system('echo hacked'))]\nBackground prompt: x"
    with pytest.raises(LayoutParseError):
        parse(text)


def test_json_round_trip_and_canvas_from_the_file():
    layout = Layout(
        boxes=[Box(name="a cat", x=1, y=2, w=3, h=4)], background="b", width=640, height=480
    )
    assert Layout.from_json(layout.to_json()) == layout
    assert parse(layout.to_json()) == layout  # the JSON's own canvas wins


def test_scaled_moves_boxes_with_the_canvas():
    layout = Layout(boxes=[Box(name="a cat", x=128, y=0, w=256, h=512)], background="b")
    big = layout.scaled(1024, 768)
    assert big.boxes[0].xyxy == (256, 0, 768, 768)
    assert (big.width, big.height) == (1024, 768)

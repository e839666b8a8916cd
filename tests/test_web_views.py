"""What the `lmd web` page shows, as plain data (no server): the table read back, the chat,
pictures with boxes, the turns strip, per-phase progress. No gradio needed."""

from __future__ import annotations

import pytest
from lmd.conversation import Conversation
from lmd.layouts import Layout, LayoutParseError
from PIL import Image

from lmd.web import views
from lmd.web.progress import DECODE, PHASES, PLANNING, PhaseProgress
from lmd.web.state import Failure
from tests.scripted_planner import CAT_DOG, ScriptedPlanner
from tests.sketch_renderer import SketchRenderer


def test_the_table_reads_back_as_the_layout_it_shows():
    layout = Layout.model_validate(
        {
            "boxes": [{"name": "a cat", "x": 40, "y": 200, "w": 160, "h": 160.5}],
            "background": "a park",
            "negative": "blurry",
            "width": 640,
            "height": 480,
        }
    )
    rows = views.table_rows(layout)
    assert rows == [["a cat", 40, 200, 160, 160.5]]
    back, notes = views.layout_from_table(rows, "a park", "blurry", 640, 480)
    assert back == layout and notes == []


def test_blank_rows_are_skipped_and_numbers_may_be_text():
    rows = [["a cat", "40", "200", "160", "160"], ["", None, None, None, None], [None] * 5]
    layout, _ = views.layout_from_table(rows, "a park", "")
    assert layout.names == ["a cat"] and layout.boxes[0].x == 40


def test_boxes_off_the_canvas_are_clipped_or_dropped_with_a_note():
    rows = [["a cat", 400, 0, 200, 100], ["a ghost", 600, 0, 50, 50]]
    layout, notes = views.layout_from_table(rows, "a park", "")
    assert [(b.name, b.w) for b in layout.boxes] == [("a cat", 112)]
    assert any("clipped box 'a cat'" in n for n in notes)
    assert any("dropped box 'a ghost'" in n for n in notes)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["a cat", "left", 0, 10, 10], r"row 1 \('a cat'\): x must be a number, not 'left'"),
        (["a cat", 0, 0, float("nan"), 10], r"row 1 \('a cat'\): w must be a number"),
        (["a cat", 0, 0, 0, 10], r"row 1 \('a cat'\): w and h must be more than 0"),
        (["", 0, 0, 10, 10], "row 1 has no name"),
        (["a cat", 0, 0, 10, True], r"row 1 \('a cat'\): h must be a number"),
    ],
)
def test_a_bad_cell_names_its_row_and_column(row, message):
    with pytest.raises(LayoutParseError, match=message):
        views.layout_from_table([row], "a park", "")


def test_an_empty_background_is_refused():
    with pytest.raises(LayoutParseError, match="background is empty"):
        views.layout_from_table([["a cat", 0, 0, 10, 10]], "  ", "")


def conversation(tmp_path) -> Conversation:
    return Conversation(ScriptedPlanner(CAT_DOG), SketchRenderer(), out_dir=tmp_path, seed=3)


def test_the_chat_says_what_each_turn_did(tmp_path):
    c = conversation(tmp_path)
    first = c.send("a cat and a dog")
    c.edit(first.layout.model_copy(update={"background": "a beach"}))
    c.reroll()
    assert views.chat_messages(c.turns) == [
        {"role": "user", "content": "a cat and a dog"},
        {"role": "assistant", "content": f"{first.summary} (2 drawn, 0 reused)"},
        {"role": "user", "content": "(edited the layout by hand)"},
        # A new background redraws every object, in the product and in the sketch, each kept
        # alike to turn 1's by shared attention (the conversation's anchors).
        {
            "role": "assistant",
            "content": 'background: "a park" -> "a beach" (2 drawn, 0 reused; a cat, a dog as in '
            "turn 1)",
        },  # fmt: skip
        {"role": "user", "content": "(new seed)"},
        {"role": "assistant", "content": views.outcome_text(c.current)},
    ]


def test_a_failure_follows_the_conversation_and_the_status_under_what_was_asked(tmp_path):
    c = conversation(tmp_path)
    first = c.send("a cat and a dog")
    failed = Failure("move the dog up", "the LLM at http://127.0.0.1:9/v1 did not answer")
    assert views.chat_messages(c.turns, failed)[2:] == [
        {"role": "user", "content": "move the dog up"},
        {"role": "assistant", "content": f"Not done: {failed.message}"},
    ]
    button = Failure(None, "nothing to redo")  # a button: no request to repeat
    assert views.chat_messages(c.turns, button)[2:] == [
        {"role": "assistant", "content": "Not done: nothing to redo"},
    ]
    status = views.status_text(first, ["a note"], failed)
    assert status.split("\n\n") == [
        views.outcome_text(first), "a note", f"**Not done: {failed.message}**",
    ]  # fmt: skip
    assert "Not done" in views.status_text(None, (), button)


def test_the_help_says_how_to_edit_the_boxes_and_rows_as_the_page_offers_it():
    help_text = views.canvas_text(None)
    assert "512 x 512 px" in help_text and "+ adds one" not in help_text
    for how in ("Drag a box", "box tool", "(or C)", "Delete", "⋮ menu adds or deletes a row"):
        assert how in help_text


def test_the_picture_is_enlarged_to_draw_boxes_and_a_missing_one_shows_the_layout(tmp_path):
    c = conversation(tmp_path)
    turn = c.send("a cat and a dog")
    small = turn.image.resize((128, 128))
    turn.with_image(small)
    assert views.picture(turn, show_boxes=False) is small
    boxed = views.picture(turn, show_boxes=True)
    assert boxed.size == (512, 512) and boxed.tobytes() != small.resize((512, 512)).tobytes()
    elsewhere = turn.model_copy(update={"image_path": str(tmp_path / "gone.png")})
    sketch = views.picture(elsewhere.with_image(None), show_boxes=False)
    assert sketch.size == (512, 512)  # the layout drawn on a blank canvas
    assert views.picture(None, show_boxes=True) is None


def test_the_strip_marks_the_current_turn_and_undone_ones(tmp_path):
    c = conversation(tmp_path)
    first = c.send("a cat and a dog")
    c.edit(first.layout.model_copy(update={"background": "a beach"}))
    c.undo()
    strip = views.thumbnails(c.session)
    assert [caption for _, caption in strip] == [
        "1. a cat and a dog (now)",
        "2. (edited the layout by hand) (undone)",
    ]
    assert all(isinstance(image, Image.Image) for image, _ in strip)


def test_progress_names_each_phase_and_ends_with_decoding():
    seen = []
    progress = PhaseProgress(lambda value, desc, unit: seen.append((desc, value)))
    progress.planning()
    progress("loading", 0, 1)
    progress("boxes", 1, 2)
    progress("boxes", 2, 2)
    progress("overall", 1, 2)
    assert seen[-1] == (PHASES["overall"], (1, 2))  # no decoding before the last step
    progress("overall", 2, 2)
    progress("refiner", 1, 3)
    assert seen == [
        (PLANNING, 0.0),
        (PHASES["loading"], 0.0),
        (PHASES["boxes"], (1, 2)),
        (PHASES["boxes"], (2, 2)),
        (PHASES["overall"], (1, 2)),
        (PHASES["overall"], (2, 2)),
        (DECODE, 0.0),
        ("refiner", (1, 3)),
    ]


def test_the_strip_is_drawn_at_thumbnail_size_whatever_the_canvas(tmp_path):
    from lmd.conversation import Session

    big = Layout.model_validate(
        {"boxes": [{"name": "a cat", "x": 40, "y": 40, "w": 900, "h": 600}],
         "background": "a park", "width": 4096, "height": 2048}
    )  # fmt: skip
    picture = tmp_path / "turn-001.png"
    Image.new("RGB", (1024, 512), "white").save(picture)
    turn = {"request": "a cat", "reply": "x", "background_seed": 1, "object_ids": ["obj1"],
            "object_seeds": [2], "layout": big.model_dump()}  # fmt: skip
    session = Session.model_validate(
        {"seed": 1, "turns": [turn, {**turn, "image_path": str(picture)}], "cursor": 1}
    )
    (sketched, _), (drawn, caption) = views.thumbnails(session)
    assert sketched.size == (160, 80) and drawn.size == (160, 80)
    assert caption.endswith("(now)")
    assert Image.open(picture).size == (1024, 512)  # the picture itself is untouched
    assert max(views.picture(session.turns[0], True).size) == views.DISPLAY_SIZE

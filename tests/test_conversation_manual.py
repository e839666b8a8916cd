"""`Conversation.edit`: a layout edited by hand is a turn like any other, without the LLM."""

from __future__ import annotations

import json

import pytest
from lmd.conversation import MANUAL_REQUEST, Conversation, is_manual
from lmd.conversation.manager import MANUAL_HISTORY_TEXT
from lmd.layouts import Box, Layout

from tests.scripted_planner import CAT_DOG, DOG_LEFT, ScriptedPlanner
from tests.sketch_renderer import SketchRenderer


def chat(tmp_path, *replies) -> Conversation:
    return Conversation(
        ScriptedPlanner(*replies),
        SketchRenderer(),
        session_path=tmp_path / "session.json",
        out_dir=tmp_path / "out",
        seed=99,
    )


def moved_dog(layout: Layout, x: float = 200) -> Layout:
    boxes = [b.model_copy(update={"x": x}) if b.name == "a dog" else b for b in layout.boxes]
    return layout.model_copy(update={"boxes": boxes})


def test_a_hand_edit_renders_without_the_planner_and_reuses_unchanged_objects(tmp_path):
    c = chat(tmp_path, CAT_DOG)
    first = c.send("a cat and a dog")
    turn = c.edit(moved_dog(first.layout))
    assert len(c.planner.calls) == 1  # only the first request asked the LLM
    assert (turn.request, turn.reply) == (MANUAL_REQUEST, None)
    assert is_manual(turn) and not is_manual(first)
    assert turn.summary == 'moved "a dog"'
    assert turn.object_ids == first.object_ids and turn.object_seeds == first.object_seeds
    assert turn.background_seed == first.background_seed
    assert (turn.generated, turn.reused) == (0, 2)  # a move keeps the size: both reused
    assert turn.image_path == str(tmp_path / "out" / "turn-002.png")
    saved = json.loads((tmp_path / "session.json").read_text())
    assert [t["request"] for t in saved["turns"]] == ["a cat and a dog", MANUAL_REQUEST]
    assert saved["turns"][1]["reply"] is None and saved["cursor"] == 1


def test_a_resized_box_is_drawn_afresh(tmp_path):
    c = chat(tmp_path, CAT_DOG)
    first = c.send("a cat and a dog")
    cat, dog = first.layout.boxes
    turn = c.edit(
        first.layout.model_copy(update={"boxes": [cat, dog.model_copy(update={"w": 90})]})
    )
    assert (turn.generated, turn.reused) == (1, 1)
    assert turn.summary == 'resized "a dog"'


def test_undo_and_redo_step_over_a_hand_edit(tmp_path):
    c = chat(tmp_path, CAT_DOG)
    first = c.send("a cat and a dog")
    edited = c.edit(moved_dog(first.layout))
    assert c.undo() == first
    assert c.redo() == edited
    assert json.loads((tmp_path / "session.json").read_text())["cursor"] == 1


def test_the_next_spoken_edit_starts_from_the_hand_edited_layout(tmp_path):
    c = chat(tmp_path, CAT_DOG, DOG_LEFT)
    first = c.send("a cat and a dog")
    edited = c.edit(moved_dog(first.layout, x=10))
    c.send("move the dog left")
    history = c.planner.calls[1]
    assert history[-3:] == [
        {"role": "user", "content": MANUAL_HISTORY_TEXT},
        {"role": "assistant", "content": edited.layout.to_llm_text()},
        {"role": "user", "content": "move the dog left"},
    ]


def test_a_first_turn_can_be_drawn_by_hand_and_then_edited_by_talking(tmp_path):
    c = chat(tmp_path, DOG_LEFT)
    layout = Layout(boxes=[Box(name="a dog", x=300, y=190, w=170, h=180)], background="a park")
    turn = c.edit(layout)
    assert c.planner.calls == []
    assert turn.summary == "1 object: a dog; background: a park"
    c.send("add a cat on the left")
    assert c.planner.calls[0][0]["content"] == "edit"  # an edit of the hand-made layout
    assert c.planner.calls[0][1]["content"] == MANUAL_HISTORY_TEXT


def test_a_session_with_a_hand_edit_loads_back(tmp_path):
    c = chat(tmp_path, CAT_DOG)
    first = c.send("a cat and a dog")
    edited = c.edit(moved_dog(first.layout))
    c.close()
    resumed = Conversation.load(tmp_path / "session.json", ScriptedPlanner(), SketchRenderer())
    assert resumed.turns == [first, edited]
    assert is_manual(resumed.current)


def test_a_typed_slash_edit_request_is_not_a_hand_edit(tmp_path):
    c = chat(tmp_path, CAT_DOG)
    assert not is_manual(c.send(MANUAL_REQUEST))  # the LLM answered it: it has a reply


def test_edit_needs_a_layout(tmp_path):
    with pytest.raises(TypeError, match="layouts.Layout"):
        chat(tmp_path).edit(CAT_DOG)

"""The session file: saved atomically after every turn, resumable, never clobbered."""

from __future__ import annotations

import json
import os

import pytest
from lmd.conversation import (
    Conversation,
    RenderOutput,
    RenderRequest,
    Session,
    SessionError,
)
from lmd.layouts import LmdError

from tests.scripted_planner import CAT_DOG, DOG_LEFT, WITH_HAT, ScriptedPlanner
from tests.sketch_renderer import SketchRenderer


class RenderFailed(LmdError):
    pass


class FlakyRenderer:
    """A sketch renderer that raises on the calls a test picks (a crash mid-render)."""

    def __init__(self, fail_on: set[int]) -> None:
        self.calls = 0
        self.fail_on = fail_on
        self.sketch = SketchRenderer()

    def __call__(self, request: RenderRequest) -> RenderOutput:
        self.calls += 1
        if self.calls in self.fail_on:
            if request.progress is not None:
                request.progress("a cat", 1, 2)
            raise RenderFailed("out of memory while drawing 'a cat'")
        return self.sketch(request)


def _listing(folder) -> list[str]:
    """The folder's files, without the lock file an open conversation keeps beside its session."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".json.lock"))


@pytest.fixture
def path(tmp_path):
    return tmp_path / "session.json"


def test_session_file_records_every_turn(tmp_path, path):
    c = Conversation(
        ScriptedPlanner(CAT_DOG, DOG_LEFT), SketchRenderer(), session_path=path,
        out_dir=tmp_path / "out", seed=9, meta={"llm": "gpt-4o"},
    )  # fmt: skip
    c.send("a cat and a dog")
    c.send("move the dog left")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == 1 and data["seed"] == 9 and data["cursor"] == 1
    assert data["issued"] == 2 and data["renders"] == 2 and data["meta"] == {"llm": "gpt-4o"}
    assert [t["request"] for t in data["turns"]] == ["a cat and a dog", "move the dog left"]
    assert data["turns"][1]["reply"] == DOG_LEFT
    assert data["turns"][1]["summary"] == 'moved "a dog"'
    assert data["turns"][1]["layout"]["boxes"][1] == {
        "name": "a dog", "x": 220.0, "y": 190.0, "w": 170.0, "h": 180.0,
    }  # fmt: skip
    assert data["turns"][1]["image_path"] == str(tmp_path / "out" / "turn-002.png")


def test_resume_restores_turns_cursor_and_counters_and_continues(tmp_path, path):
    planner = ScriptedPlanner(CAT_DOG, DOG_LEFT, WITH_HAT)
    c = Conversation(planner, SketchRenderer(), session_path=path, out_dir=tmp_path / "o", seed=3)
    c.send("a cat and a dog")
    c.send("move the dog left")
    c.undo()
    c.close()
    resumed = Conversation.load(path, planner, SketchRenderer())
    assert resumed.session == c.session
    assert resumed.current == c.current and resumed.can_redo
    assert resumed.out_dir == tmp_path  # new pictures go beside the session file
    assert resumed.current.image.size == (512, 512)  # read back from its file
    hat = resumed.send("add a hat")
    assert hat.object_ids == ["obj1", "obj2", "obj3"]
    assert hat.image_path == str(tmp_path / "turn-003.png")
    assert [t.request for t in Session.load(path).turns] == ["a cat and a dog", "add a hat"]


def test_open_starts_a_new_session_or_resumes_one(path):
    planner = ScriptedPlanner(CAT_DOG)
    c = Conversation.open(path, planner, SketchRenderer(), seed=11)
    assert c.seed == 11 and c.current is None
    c.send("a cat and a dog")
    c.close()
    again = Conversation.open(path, planner, SketchRenderer(), seed=99)
    assert again.seed == 11 and again.current == c.current


def test_a_new_conversation_never_overwrites_an_existing_session(path):
    path.write_text("precious", encoding="utf-8")
    with pytest.raises(SessionError, match="already exists"):
        Conversation(ScriptedPlanner(), SketchRenderer(), session_path=path)
    assert path.read_text(encoding="utf-8") == "precious"


def test_a_render_crash_mid_turn_leaves_the_session_file_intact(tmp_path, path):
    render = FlakyRenderer(fail_on={2})
    c = Conversation(
        ScriptedPlanner(CAT_DOG, DOG_LEFT, DOG_LEFT), render, session_path=path,
        out_dir=tmp_path / "out", seed=1,
    )  # fmt: skip
    first = c.send("a cat and a dog")
    before = path.read_bytes()
    with pytest.raises(RenderFailed, match="out of memory"):
        c.send("move the dog left")
    assert path.read_bytes() == before
    assert c.turns == [first] and c.session.renders == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["turn-001.png"]
    assert _listing(tmp_path) == ["out", "session.json"]
    c.close()
    resumed = Conversation.load(path, c.planner, SketchRenderer(), out_dir=tmp_path / "out")
    assert resumed.current == first
    turn = resumed.send("move the dog left")
    assert turn.summary == 'moved "a dog"'
    assert turn.image_path.endswith("turn-002.png")


def test_a_failed_save_keeps_the_old_file_and_the_old_state(tmp_path, path, monkeypatch):
    c = Conversation(
        ScriptedPlanner(CAT_DOG, DOG_LEFT, DOG_LEFT), SketchRenderer(), session_path=path, seed=1
    )
    c.send("a cat and a dog")
    before, state = path.read_bytes(), c.session

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SessionError, match="No space left"):
        c.send("move the dog left")
    monkeypatch.undo()
    assert path.read_bytes() == before and c.session is state
    assert _listing(tmp_path) == ["session.json"]  # no temp file left
    c.send("move the dog left")
    before, state = path.read_bytes(), c.session
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SessionError):
        c.undo()
    assert path.read_bytes() == before and c.session is state and c.can_undo


def test_save_to_a_new_path_and_adopt_it(tmp_path):
    c = Conversation(ScriptedPlanner(CAT_DOG, DOG_LEFT), SketchRenderer(), seed=1)
    with pytest.raises(SessionError, match="give a path"):
        c.save()
    c.send("a cat and a dog")
    target = tmp_path / "keep" / "chat.json"
    assert c.save(target) == target
    c.send("move the dog left")  # later turns are saved there too
    assert len(Session.load(target).turns) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a valid session"),
        ('{"seed": 1, "turns": [], "cursor": 0}', "cursor 0 is outside"),
        ('{"seed": 1, "version": 7}', "version 7"),
        ('{"seed": 1, "turns": [{"request": "x"}], "cursor": 0}', r"turns\.0\.reply"),
    ],
)
def test_a_bad_session_file_is_one_clear_error_and_is_left_alone(path, content, message):
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SessionError, match=message) as info:
        Conversation.load(path, ScriptedPlanner(), SketchRenderer())
    assert str(path) in str(info.value)
    assert path.read_text(encoding="utf-8") == content


def test_a_turn_whose_seeds_do_not_match_its_boxes_is_rejected(tmp_path, path):
    c = Conversation(ScriptedPlanner(CAT_DOG), SketchRenderer(), session_path=path, seed=1)
    c.send("a cat and a dog")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["turns"][0]["object_seeds"] = [1]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SessionError, match="one object id and one seed per box"):
        Session.load(path)


def test_missing_session_file(path):
    with pytest.raises(SessionError, match="no session file"):
        Conversation.load(path, ScriptedPlanner(), SketchRenderer())

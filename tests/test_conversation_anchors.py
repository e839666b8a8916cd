"""Objects that recur across turns keep their look: which earlier turn anchors each, what the
renderer is asked, what the session records, `/consistent on|off`, undo and resume.

The renderer is the torch-free `SketchRenderer` (it reports the anchors it is given as used
for every object it would draw differently), wrapped to record each request.
"""

from __future__ import annotations

import io
import json

import pytest
from lmd.conversation import Conversation, Session, SessionError, run_repl
from lmd.conversation.render import RenderRequest, kept_boxes

from tests.scripted_planner import BLACK_CAT, CAT_DOG, DOG_LEFT, ScriptedPlanner, reply
from tests.sketch_renderer import SketchRenderer

NIGHT = reply("('a cat', [40, 200, 160, 160]), ('a dog', [300, 190, 170, 180])",
              "a park at night")  # fmt: skip
SOFA = reply("('a cat', [60, 220, 160, 160]), ('a dog', [300, 190, 170, 180])", "a sofa")


class Recording(SketchRenderer):
    def __init__(self):
        super().__init__()
        self.requests: list[RenderRequest] = []

    def __call__(self, request):
        self.requests.append(request)
        return super().__call__(request)


def chat(tmp_path, *replies, **options):
    render = Recording()
    c = Conversation(
        ScriptedPlanner(*replies), render, session_path=tmp_path / "session.json",
        out_dir=tmp_path / "out", seed=7, **options,
    )  # fmt: skip
    return c, render


def test_a_changed_scene_anchors_every_recurring_object_to_the_turn_that_drew_it(tmp_path):
    c, render = chat(tmp_path, CAT_DOG, NIGHT, SOFA)
    first = c.send("a cat and a dog")
    assert render.requests[0].anchors == () and first.anchors == {}
    night = c.send("make it night")
    (anchor,) = render.requests[1].anchors
    assert anchor.turn == 0 and anchor.layout == first.layout
    assert anchor.background_seed == first.background_seed
    assert anchor.object_seeds == first.object_seeds and anchor.boxes == {0: 0, 1: 1}
    assert night.anchors == {"obj1": 0, "obj2": 0}
    sofa = c.send("put them on a sofa")
    (anchor,) = render.requests[2].anchors
    assert anchor.turn == 0  # inherited: the look is still turn 1's
    assert sofa.anchors == {"obj1": 0, "obj2": 0}
    saved = json.loads((tmp_path / "session.json").read_text())
    both = {"obj1": 0, "obj2": 0}
    assert [t["anchors"] for t in saved["turns"]] == [{}, both, both]


def test_only_objects_whose_look_would_change_are_anchored(tmp_path):
    c, render = chat(tmp_path, CAT_DOG, DOG_LEFT, BLACK_CAT)
    c.send("a cat and a dog")
    moved = c.send("move the dog left")
    (anchor,) = render.requests[1].anchors
    assert kept_boxes(render.requests[1], anchor) == {0, 1}  # a move changes no look
    assert moved.anchors == {}
    black = c.send("make the cat black")
    (anchor,) = render.requests[2].anchors
    assert anchor.turn == 1  # the last turn drew both without an anchor: it is their look
    assert black.anchors == {"obj1": 1}  # the renamed cat; the dog is drawn as it was


def test_consistent_off_asks_for_no_anchors_and_is_kept_by_the_session(tmp_path):
    c, render = chat(tmp_path, CAT_DOG, NIGHT, SOFA)
    assert c.consistent
    c.set_consistent(False)  # before any turn: nothing is written yet
    assert not (tmp_path / "session.json").exists()
    c.send("a cat and a dog")
    night = c.send("make it night")
    assert render.requests[1].anchors == () and night.anchors == {}
    c.close()
    resumed = Conversation.load(tmp_path / "session.json", ScriptedPlanner(SOFA), Recording())
    assert not resumed.consistent
    resumed.set_consistent(True)  # saved at once: the session has turns
    assert Session.load(tmp_path / "session.json").consistent
    sofa = resumed.send("put them on a sofa")
    assert sofa.anchors == {"obj1": 1, "obj2": 1}  # the night turn drew them without one


def test_undo_then_a_new_turn_anchors_to_the_turns_still_in_history(tmp_path):
    c, render = chat(tmp_path, CAT_DOG, NIGHT, SOFA)
    c.send("a cat and a dog")
    c.send("make it night")
    c.undo()
    sofa = c.send("put them on a sofa")
    assert [a.turn for a in render.requests[-1].anchors] == [0]
    assert sofa.anchors == {"obj1": 0, "obj2": 0}
    assert len(c.session.turns) == 2  # the undone night turn is gone; its index is reused


def test_a_session_refuses_anchors_to_later_turns_or_unknown_objects(tmp_path):
    c, _ = chat(tmp_path, CAT_DOG, NIGHT)
    c.send("a cat and a dog")
    c.send("make it night")
    c.close()
    data = json.loads((tmp_path / "session.json").read_text())
    data["turns"][1]["anchors"] = {"obj1": 1}
    (tmp_path / "later.json").write_text(json.dumps(data))
    with pytest.raises(SessionError, match="anchored to a turn that is not earlier"):
        Session.load(tmp_path / "later.json")
    data["turns"][1]["anchors"] = {"obj9": 0}
    (tmp_path / "stranger.json").write_text(json.dumps(data))
    with pytest.raises(SessionError, match="anchors name objects the turn does not have"):
        Session.load(tmp_path / "stranger.json")


def test_the_repl_switches_it_and_says_what_each_turn_kept(tmp_path):
    c, _ = chat(tmp_path, CAT_DOG, NIGHT, SOFA)
    out, err = io.StringIO(), io.StringIO()
    code = run_repl(
        c, io.StringIO("a cat and a dog\nmake it night\n/consistent off\nput them on a sofa\n"
                       "/consistent\n/consistent maybe\n"), out, err,
    )  # fmt: skip
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[3] == (
        'background: "a park" -> "a park at night" (2 drawn, 0 reused; a cat, a dog as in turn 1)'
    )
    assert lines[4].startswith("consistent: off")
    assert (
        lines[6] == 'moved "a cat"; background: "a park at night" -> "a sofa" (2 drawn, 0 reused)'
    )
    assert lines[7].startswith("consistent: off")
    assert err.getvalue() == "usage: /consistent on|off\n"
    assert json.loads((tmp_path / "session.json").read_text())["meta"]["consistent"] is False

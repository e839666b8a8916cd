"""`Conversation`: planning, editing with history, identities and seeds, undo/redo."""

from __future__ import annotations

import pytest
from lmd.conversation import Conversation, RenderOutput, RenderRequest, SessionError
from lmd.conversation.identity import derive_seed
from lmd.layouts import LayoutParseError

from tests.scripted_planner import (
    BEACH,
    BLACK_CAT,
    CAT_DOG,
    DOG_LEFT,
    ONLY_CAT,
    WITH_HAT,
    ScriptedPlanner,
    ScriptedPlannerError,
)
from tests.sketch_renderer import SketchRenderer


def chat(tmp_path, *replies, render=None, **options) -> Conversation:
    options.setdefault("seed", 1234)
    return Conversation(
        ScriptedPlanner(*replies),
        render or SketchRenderer(),
        session_path=tmp_path / "session.json",
        out_dir=tmp_path / "out",
        **options,
    )


@pytest.fixture(scope="module")
def tiny_renderer():
    """The product's `lmd.api.Renderer` on random:tiny, small and short (models loaded once)."""
    from lmd.api import Renderer, RenderSettings

    settings = RenderSettings(
        model="random:tiny", steps=2, sam=False, device="cpu", height=64, width=64
    )
    return Renderer(settings)


@pytest.fixture(params=["sketch", "lmd"])
def renderer(request):
    """Each reuse test runs against the sketch renderer and against the real tiny Renderer."""
    if request.param == "sketch":
        return SketchRenderer()
    tiny = request.getfixturevalue("tiny_renderer")
    tiny.cache.clear()
    return tiny


def test_first_turn_plans_renders_and_saves(tmp_path):
    c = chat(tmp_path, CAT_DOG)
    turn = c.send("a cat and a dog")
    assert c.planner.calls[0][-1] == {"role": "user", "content": "a cat and a dog"}
    assert turn.request == "a cat and a dog"
    assert turn.reply == CAT_DOG
    assert turn.layout.names == ["a cat", "a dog"]
    assert turn.object_ids == ["obj1", "obj2"]
    assert turn.object_seeds == [derive_seed(1234, "obj1"), derive_seed(1234, "obj2")]
    assert turn.background_seed == derive_seed(1234, "background")
    assert (turn.generated, turn.reused) == (2, 0)
    assert turn.summary == "2 objects: a cat, a dog; background: a park"
    assert turn.image_path == str(tmp_path / "out" / "turn-001.png")
    assert turn.image is not None and turn.image.size == (512, 512)
    assert (tmp_path / "out" / "turn-001.png").is_file()
    assert (tmp_path / "session.json").is_file()
    assert c.current == turn and c.turns == [turn]


def test_an_edit_sends_the_history_and_keeps_unchanged_objects(tmp_path, renderer):
    c = chat(tmp_path, CAT_DOG, DOG_LEFT, render=renderer)
    first = c.send("a cat and a dog")
    turn = c.send("move the dog left")
    messages = c.planner.calls[1]
    assert messages[1:] == [
        {"role": "user", "content": "a cat and a dog"},
        {"role": "assistant", "content": first.layout.to_llm_text()},
        {"role": "user", "content": "move the dog left"},
    ]
    assert turn.object_ids == first.object_ids
    assert turn.object_seeds == first.object_seeds
    assert turn.background_seed == first.background_seed
    assert turn.summary == 'moved "a dog"'
    assert (turn.generated, turn.reused) == (0, 2)  # a move redraws nothing
    assert turn.image_path.endswith("turn-002.png")


def test_a_rename_keeps_identity_and_seed_but_is_drawn_afresh(tmp_path, renderer):
    c = chat(tmp_path, CAT_DOG, BLACK_CAT, render=renderer)
    first = c.send("a cat and a dog")
    turn = c.send("make the cat black")
    assert turn.object_ids == first.object_ids
    assert turn.object_seeds == first.object_seeds
    assert turn.summary == 'changed "a cat" -> "a black cat"'
    assert (turn.generated, turn.reused) == (1, 1)


def test_add_remove_and_ids_are_never_reused(tmp_path, renderer):
    c = chat(tmp_path, CAT_DOG, WITH_HAT, ONLY_CAT, CAT_DOG, render=renderer)
    c.send("a cat and a dog")
    hat = c.send("add a hat")
    assert (hat.generated, hat.reused) == (1, 2)  # only the hat is new
    assert hat.object_ids == ["obj1", "obj2", "obj3"]
    assert hat.object_seeds[2] == derive_seed(1234, "obj3")
    assert hat.summary == 'added "a hat"'
    only = c.send("remove the dog and the hat")
    assert only.object_ids == ["obj1"]
    assert only.summary == 'removed "a dog"; removed "a hat"'
    back = c.send("bring a dog back")
    assert back.object_ids == ["obj1", "obj4"]
    assert (back.generated, back.reused) == (1, 1)  # a new dog, with a new seed


def test_background_change_keeps_the_background_seed(tmp_path, renderer):
    c = chat(tmp_path, CAT_DOG, BEACH, render=renderer)
    first = c.send("a cat and a dog")
    turn = c.send("at the beach")
    assert turn.background_seed == first.background_seed
    assert turn.summary == 'background: "a park" -> "a beach"'
    assert (turn.generated, turn.reused) == (2, 0)  # each object is drawn over the new scene


def test_new_seed_and_reroll_change_only_the_background_seed(tmp_path, renderer):
    c = chat(tmp_path, CAT_DOG, DOG_LEFT, CAT_DOG, render=renderer)
    first = c.send("a cat and a dog")
    again = c.reroll()
    assert (again.generated, again.reused) == (2, 0)  # new background noise: all redrawn
    assert again.request == "/new" and again.reply is None
    assert again.layout == first.layout
    assert again.object_seeds == first.object_seeds
    assert again.background_seed != first.background_seed
    assert again.summary == f"new background seed {again.background_seed}"
    moved = c.send("move the dog left", new_seed=True)
    assert moved.background_seed not in (first.background_seed, again.background_seed)
    assert moved.summary == f'moved "a dog"; new background seed {moved.background_seed}'
    # The re-roll is not an LLM exchange, so it is not in the history the LLM sees.
    users = [m["content"] for m in c.planner.calls[1] if m["role"] == "user"]
    assert users == ["a cat and a dog", "move the dog left"]
    # Nor the seed-only turn after it: the edit after `new_seed` sees both requests.
    c.send("put the dog back")
    users = [m["content"] for m in c.planner.calls[2] if m["role"] == "user"]
    assert users == ["a cat and a dog", "move the dog left", "put the dog back"]


def test_reroll_before_anything_is_an_error(tmp_path):
    with pytest.raises(SessionError, match="nothing to draw"):
        chat(tmp_path).reroll()


def test_undo_and_redo_move_the_cursor_and_are_saved(tmp_path):
    c = chat(tmp_path, CAT_DOG, DOG_LEFT)
    first = c.send("a cat and a dog")
    second = c.send("move the dog left")
    assert c.redo() is None
    assert c.undo() == first
    assert c.undo() is None  # the first picture stays
    assert c.current == first and c.turns == [first]
    assert c.can_redo and not c.can_undo
    c.close()
    with Conversation.load(tmp_path / "session.json", c.planner, c.render) as again:
        assert again.current == first
    assert c.redo() == second  # takes the lock again
    assert c.turns == [first, second]


def test_a_send_after_undo_drops_the_redo_branch_and_edits_from_the_cursor(tmp_path):
    c = chat(tmp_path, CAT_DOG, DOG_LEFT, WITH_HAT)
    first = c.send("a cat and a dog")
    c.send("move the dog left")
    c.undo()
    hat = c.send("add a hat")
    users = [m["content"] for m in c.planner.calls[2] if m["role"] == "user"]
    assert users == ["a cat and a dog", "add a hat"]
    assert c.turns == [first, hat]
    assert len(c.session.turns) == 2 and not c.can_redo
    assert hat.summary == 'added "a hat"'
    assert hat.image_path.endswith("turn-003.png")  # earlier pictures are never overwritten


def test_the_same_seed_and_replies_replay_the_same_session(tmp_path):
    sessions = []
    for name in ("a", "b"):
        c = chat(tmp_path / name, CAT_DOG, WITH_HAT, DOG_LEFT)
        for text in ("a cat and a dog", "add a hat", "move the dog left"):
            c.send(text)
        sessions.append(c)
    a, b = (s.session.model_dump(exclude={"turns": {"__all__": {"image_path"}}}) for s in sessions)
    assert a == b
    pictures = [[t.image.tobytes() for t in s.turns] for s in sessions]
    assert pictures[0] == pictures[1]


def test_without_a_seed_one_is_chosen_and_kept(tmp_path):
    c = Conversation(ScriptedPlanner(CAT_DOG), SketchRenderer())
    assert 0 <= c.seed < 2**31
    turn = c.send("a cat and a dog")
    assert turn.object_seeds[0] == derive_seed(c.seed, "obj1")
    assert turn.image_path is None and turn.image is not None  # no out_dir: kept in memory


def test_progress_reaches_the_renderer(tmp_path):
    seen = []
    c = chat(tmp_path, CAT_DOG, DOG_LEFT, progress=lambda *a: seen.append(("default", *a)))
    c.send("a cat and a dog")
    c.send("move the dog left", progress=lambda *a: seen.append(("call", *a)))
    assert seen == [
        ("default", "a cat", 1, 2),
        ("default", "a dog", 2, 2),
        ("call", "a cat", 1, 2),
        ("call", "a dog", 2, 2),
    ]


def test_an_edit_hands_the_renderer_the_objects_own_seeds(tmp_path):
    requests: list[RenderRequest] = []
    sketch = SketchRenderer()

    def render(request: RenderRequest) -> RenderOutput:
        requests.append(request)
        return sketch(request)

    c = Conversation(ScriptedPlanner(CAT_DOG, DOG_LEFT), render, seed=5)
    first = c.send("a cat and a dog")
    c.send("move the dog left")
    assert requests[0].object_seeds == first.object_seeds
    assert requests[1].object_seeds == first.object_seeds


def test_planner_failures_raise_and_change_nothing(tmp_path):
    c = chat(tmp_path, CAT_DOG, ScriptedPlannerError("the LLM gave up after 3 attempts"), "chatter")
    c.send("a cat and a dog")
    before = (tmp_path / "session.json").read_bytes()
    state = c.session
    with pytest.raises(ScriptedPlannerError):
        c.send("move the dog left")
    with pytest.raises(LayoutParseError):
        c.send("move the dog left")
    assert c.session is state
    assert (tmp_path / "session.json").read_bytes() == before


def test_rejects_a_planner_without_the_planner_interface():
    with pytest.raises(TypeError, match="complete"):
        Conversation(object(), SketchRenderer())


def test_render_request_needs_one_seed_per_box():
    from lmd.layouts import parse

    with pytest.raises(ValueError, match="one seed per box"):
        RenderRequest(layout=parse(CAT_DOG), background_seed=1, object_seeds=[1])


def test_empty_request_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        chat(tmp_path).send("   ")


def test_the_conversations_seeds_reach_the_controller(tmp_path, tiny_renderer):
    tiny_renderer.cache.clear()
    c = chat(tmp_path, CAT_DOG, DOG_LEFT, render=tiny_renderer)
    c.send("a cat and a dog")
    turn = c.send("move the dog left")
    direct = tiny_renderer.controller.render(
        turn.layout, seed=turn.background_seed, object_seeds=turn.object_seeds,
        height=64, width=64,
    )  # fmt: skip
    assert direct.object_seeds == turn.object_seeds
    assert direct.image.tobytes() == turn.image.tobytes()
    # Seeds the controller would pick for itself give another picture.
    own = tiny_renderer.controller.render(
        turn.layout, seed=turn.background_seed, height=64, width=64
    )
    assert own.object_seeds != turn.object_seeds
    assert own.image.tobytes() != turn.image.tobytes()

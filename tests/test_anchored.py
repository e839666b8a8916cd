"""`lmd.api.Renderer` as a conversation's renderer with anchors (`lmd.anchored`): which anchors
it draws, and that the new picture is drawn beside them, on `random:tiny`."""

from __future__ import annotations

import pytest
from lmd.conversation.render import Anchor, RenderRequest
from lmd.layouts import parse

from lmd.anchored import needed, render_anchored
from lmd.api import Renderer, RenderSettings
from lmd.controller import ConsistencySettings

PARK = parse(
    "Objects: [('a grey cat', [40, 200, 200, 240]), ('a dog', [300, 200, 160, 200])]\n"
    "Background prompt: a park\nNegative prompt: "
)
NIGHT = PARK.model_copy(update={"background": "a park at night"})


@pytest.fixture(scope="module")
def renderers():
    base = dict(model="random:tiny", steps=2, height=64, width=64, sam=False, device="cpu")
    return {m: Renderer(RenderSettings(method=m, **base)) for m in ("lmd", "sd")}


def anchor(turn: int, layout=PARK, boxes=None, seed: int = 9) -> Anchor:
    return Anchor(turn, layout, seed, [1, 2], boxes if boxes is not None else {0: 0, 1: 1})


def test_an_anchor_is_drawn_only_for_objects_whose_look_would_change(renderers):
    moved = PARK.model_copy(update={"boxes": [PARK.boxes[0], PARK.boxes[1].model_copy(
        update={"x": 100})]})  # fmt: skip
    request = RenderRequest(moved, 9, [1, 2], anchors=(anchor(0),))
    assert needed(renderers["lmd"], request) == []  # LMD reuses both objects as they were
    (kept,) = needed(renderers["sd"], request)  # one pass redraws everything
    assert kept.boxes == {0: 0, 1: 1}
    renamed = PARK.model_copy(update={"boxes": [PARK.boxes[0].model_copy(
        update={"name": "a black cat"}), PARK.boxes[1]]})  # fmt: skip
    (only,) = needed(renderers["lmd"], RenderRequest(renamed, 9, [1, 2], anchors=(anchor(0),)))
    assert only.boxes == {0: 0}


def test_at_most_the_settings_anchors_are_drawn_those_holding_the_most_objects(renderers):
    r = renderers["sd"]
    three = (anchor(0, boxes={0: 0}), anchor(1, boxes={0: 0, 1: 1}), anchor(2, boxes={1: 1}))
    request = RenderRequest(NIGHT, 9, [1, 2], anchors=three)
    assert [a.turn for a in needed(r, request)] == [1, 2]  # the most objects, then the latest
    r.consistency = ConsistencySettings(anchors=1)
    try:
        assert [a.turn for a in needed(r, request)] == [1]
        r.consistency = ConsistencySettings(share=False)
        assert needed(r, request) == []
    finally:
        r.consistency = ConsistencySettings()


@pytest.mark.slow
def test_the_new_picture_is_drawn_beside_its_anchor_and_only_it_is_kept(renderers):
    r = renderers["lmd"]
    r.cache.clear()
    plain = r.render(NIGHT, seed=9, object_seeds=[1, 2])
    out = render_anchored(r, RenderRequest(NIGHT, 9, [1, 2], anchors=(anchor(0, seed=4),)))
    assert out.anchored == {0: 0, 1: 0}
    assert out.image.size == plain.image.size and out.image.tobytes() != plain.image.tobytes()
    assert (out.generated, out.reused) == (0, 2)  # the night turn's objects, drawn just before
    alone = render_anchored(r, RenderRequest(NIGHT, 9, [1, 2]))
    assert alone.anchored == {} and alone.image.tobytes() == plain.image.tobytes()

"""Identity matching, seeds and change summaries: pure functions."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from lmd.conversation.identity import MatchConfig, Tracked, assign, derive_seed, match_boxes
from lmd.conversation.summary import describe_change, describe_layout
from lmd.layouts import Box, Layout

CAT = Box(name="a cat", x=40, y=200, w=160, h=160)
DOG = Box(name="a dog", x=300, y=190, w=170, h=180)
BALL = Box(name="a ball", x=220, y=400, w=60, h=60)


def moved(box: Box, dx: float = 0, dy: float = 0, **changes) -> Box:
    return box.model_copy(update={"x": box.x + dx, "y": box.y + dy, **changes})


def tracked(*boxes: Box, seed0: int = 100) -> list[Tracked]:
    return [Tracked(f"obj{i + 1}", b, seed0 + i) for i, b in enumerate(boxes)]


def test_same_name_keeps_identity_and_seed_when_moved():
    prev = tracked(CAT, DOG)
    found = assign(prev, [CAT, moved(DOG, dx=-200)], session_seed=7, issued=2)
    assert found.ids == ["obj1", "obj2"]
    assert found.seeds == [100, 101]
    assert found.removed == [] and found.issued == 2


def test_identity_follows_the_box_not_the_list_order():
    found = assign(tracked(CAT, DOG), [DOG, CAT], session_seed=7, issued=2)
    assert found.ids == ["obj2", "obj1"]
    assert found.seeds == [101, 100]


def test_renamed_in_the_same_box_is_the_same_object_with_its_seed():
    found = assign(
        tracked(CAT, DOG), [moved(CAT, name="a black cat"), DOG], session_seed=7, issued=2
    )
    assert found.ids == ["obj1", "obj2"]
    assert found.seeds == [100, 101]


def test_renamed_with_a_similar_box_among_several_changes():
    old = [CAT, DOG]
    new = [moved(DOG, dx=10, name="a wolf"), moved(CAT, dy=-10, name="a tiger")]
    assert match_boxes(old, new) == [1, 0]


def test_lone_rename_needs_only_some_overlap():
    far_but_touching = moved(CAT, dx=150, name="a fox")  # IoU with CAT is small but > 0
    assert 0 < CAT.iou(far_but_touching) < MatchConfig().rename_iou
    assert match_boxes([CAT, DOG], [far_but_touching, DOG]) == [0, 1]


def test_an_object_somewhere_else_under_another_name_is_new():
    bird = Box(name="a bird", x=300, y=10, w=80, h=60)
    found = assign(tracked(CAT, DOG), [bird, DOG], session_seed=7, issued=2)
    assert found.ids == ["obj3", "obj2"]
    assert found.seeds[0] == derive_seed(7, "obj3")
    assert found.removed == [0]
    assert found.issued == 3


def test_added_objects_get_fresh_ids_and_derived_seeds():
    found = assign(tracked(CAT, DOG), [CAT, DOG, BALL], session_seed=7, issued=5)
    assert found.ids == ["obj1", "obj2", "obj6"]
    assert found.seeds[2] == derive_seed(7, "obj6")
    assert found.matched == [0, 1, None]


def test_removed_objects_are_reported():
    found = assign(tracked(CAT, DOG, BALL), [DOG], session_seed=7, issued=3)
    assert found.ids == ["obj2"]
    assert found.removed == [0, 2]


def test_duplicates_pair_by_overlap():
    left = Box(name="a cat", x=0, y=0, w=100, h=100)
    right = Box(name="a cat", x=300, y=0, w=100, h=100)
    # The right cat moves a little, the left one stays; the list order is swapped.
    assert match_boxes([left, right], [moved(right, dx=20), left]) == [1, 0]


def test_duplicates_without_overlap_pair_by_centre_distance():
    left = Box(name="a cat", x=0, y=0, w=100, h=100)
    right = Box(name="a cat", x=300, y=0, w=100, h=100)
    # Both cats move down out of their old boxes; each keeps the nearest identity.
    assert match_boxes([left, right], [moved(right, dy=300), moved(left, dy=300)]) == [1, 0]


def test_a_third_duplicate_is_new():
    third = Box(name="a cat", x=200, y=300, w=100, h=100)
    found = assign(tracked(CAT), [CAT, third], session_seed=1, issued=1)
    assert found.ids == ["obj1", "obj2"]


def test_name_match_ignores_case():
    assert match_boxes([CAT], [moved(CAT, name="A Cat", dx=300)]) == [0]


def test_derive_seed_is_deterministic_and_in_range():
    assert derive_seed(42, "obj1") == derive_seed(42, "obj1")
    seeds = {derive_seed(42, f"obj{i}") for i in range(200)}
    assert len(seeds) == 200
    assert all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(42, "obj1") != derive_seed(43, "obj1")


names = st.sampled_from(["a cat", "a dog", "a ball", "a tree"])
boxes = st.builds(
    Box,
    name=names,
    x=st.integers(0, 400),
    y=st.integers(0, 400),
    w=st.integers(1, 200),
    h=st.integers(1, 200),
)


@given(st.lists(boxes, max_size=6))
def test_an_unchanged_layout_keeps_every_identity(layout_boxes):
    assert match_boxes(layout_boxes, layout_boxes) == list(range(len(layout_boxes)))


@given(st.lists(boxes, max_size=6, unique_by=lambda b: (b.name, b.x, b.y, b.w, b.h)), st.randoms())
def test_reordering_never_changes_which_box_is_which(layout_boxes, rnd: random.Random):
    order = list(range(len(layout_boxes)))
    rnd.shuffle(order)
    shuffled = [layout_boxes[i] for i in order]
    matched = match_boxes(layout_boxes, shuffled)
    assert [layout_boxes[m] for m in matched] == shuffled


# --- summaries -------------------------------------------------------------------------


def layout(*boxes: Box, background: str = "a park", negative: str = "") -> Layout:
    return Layout(boxes=list(boxes), background=background, negative=negative)


def change(old: Layout, new: Layout) -> str:
    found = assign(tracked(*old.boxes), new.boxes, session_seed=0, issued=len(old.boxes))
    return describe_change(old, new, found.matched, found.removed)


def test_first_turn_lists_the_objects_and_background():
    assert describe_layout(layout(CAT, DOG, BALL)) == (
        "3 objects: a cat, a dog, a ball; background: a park"
    )
    assert describe_layout(layout(CAT)) == "1 object: a cat; background: a park"
    assert describe_layout(layout()) == "no objects; background: a park"


def test_summary_of_a_move_an_addition_and_a_removal():
    old = layout(CAT, DOG, BALL)
    new = layout(CAT, moved(DOG, dx=-100), Box(name="a hat", x=60, y=140, w=80, h=60))
    assert change(old, new) == 'moved "a dog"; added "a hat"; removed "a ball"'


def test_summary_of_a_recolour_and_a_background_change():
    old = layout(CAT, DOG)
    new = layout(moved(CAT, name="a black cat"), DOG, background="a beach")
    assert change(old, new) == (
        'changed "a cat" -> "a black cat"; background: "a park" -> "a beach"'
    )


def test_growing_from_a_corner_is_a_resize_not_a_move():
    bigger = moved(DOG, w=DOG.w + 40, h=DOG.h + 40)
    assert change(layout(DOG), layout(bigger)) == 'resized "a dog"'
    shifted_and_bigger = moved(DOG, dx=50, dy=50, w=DOG.w + 40)
    assert change(layout(DOG), layout(shifted_and_bigger)) == 'moved and resized "a dog"'


def test_summary_of_nothing_and_of_the_negative_prompt():
    assert change(layout(CAT), layout(CAT)) == "no change"
    assert change(layout(CAT), layout(CAT, negative="blurry")) == (
        'negative prompt: "" -> "blurry"'
    )

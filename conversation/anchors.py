"""Which earlier turn keeps each recurring object's look (shared attention across turns).

An object that was in the turn before keeps the anchor that turn recorded for it; without
one, that turn itself is its anchor (it was drawn there without one, so drawing that turn
again gives its picture). So "a cat" drawn in turn 1 and redrawn at night in turn 2 and on a
sofa in turn 3 is anchored to turn 1 both times. The renderer draws each anchor turn again
beside the new picture and reports which objects it anchored (`RenderOutput.anchored`): only
those whose look would change (`kept_boxes`); the turn records them as {object id: turn}.
"""

from __future__ import annotations

from lmd.conversation.identity import Assignment
from lmd.conversation.render import Anchor
from lmd.conversation.session import Session


def propose(session: Session, found: Assignment) -> tuple[Anchor, ...]:
    """The anchors for a new turn whose objects are `found` (matched against the current
    turn), one per anchor turn, oldest first."""
    current = session.current
    if current is None:
        return ()
    boxes: dict[int, dict[int, int]] = {}
    for j, (object_id, m) in enumerate(zip(found.ids, found.matched, strict=True)):
        if m is None:
            continue
        turn = current.anchors.get(object_id, session.cursor)
        anchor = session.turns[turn]
        if object_id in anchor.object_ids:
            boxes.setdefault(turn, {})[j] = anchor.object_ids.index(object_id)
    return tuple(
        Anchor(
            turn=turn,
            layout=session.turns[turn].layout,
            background_seed=session.turns[turn].background_seed,
            object_seeds=list(session.turns[turn].object_seeds),
            boxes=boxes[turn],
        )
        for turn in sorted(boxes)
    )

"""One line saying how a turn changed the layout, e.g. `moved "a dog"; added "a hat"`."""

from __future__ import annotations

from collections.abc import Sequence

from lmd.layouts.model import Box, Layout
from lmd.layouts.words import counted

TOLERANCE = 0.5
"""Coordinates closer than this (pixels) count as unchanged."""


def _close(a: float, b: float) -> bool:
    return abs(a - b) < TOLERANCE


def describe_layout(layout: Layout) -> str:
    """The first turn's summary: `3 objects: a cat, a dog, a ball; background: a park`."""
    n = len(layout.boxes)
    objects = f"{counted(n, 'object')}: {', '.join(layout.names)}" if n else "no objects"
    return f"{objects}; background: {layout.background}"


def _object_change(old: Box, new: Box) -> str | None:
    resized = not (_close(old.w, new.w) and _close(old.h, new.h))
    corner_moved = not (_close(old.x, new.x) and _close(old.y, new.y))
    centre_moved = not all(_close(a, b) for a, b in zip(old.center, new.center, strict=True))
    # Growing from a corner or from the centre is a resize, not a move.
    moved = corner_moved and (centre_moved or not resized)
    verbs = [
        verb
        for verb, did in (("changed", old.name != new.name), ("moved", moved), ("resized", resized))
        if did
    ]
    if not verbs:
        return None
    text = f'{" and ".join(verbs)} "{old.name}"'
    return text + (f' -> "{new.name}"' if old.name != new.name else "")


def describe_change(
    previous: Layout,
    layout: Layout,
    matched: Sequence[int | None],
    removed: Sequence[int],
) -> str:
    """Summarise `previous` -> `layout`, given which old box each new box continues.

    `matched` and `removed` come from `lmd.conversation.identity.assign`.
    """
    parts = []
    for box, m in zip(layout.boxes, matched, strict=True):
        if m is None:
            parts.append(f'added "{box.name}"')
        elif (change := _object_change(previous.boxes[m], box)) is not None:
            parts.append(change)
    parts.extend(f'removed "{previous.boxes[i].name}"' for i in removed)
    if previous.background != layout.background:
        parts.append(f'background: "{previous.background}" -> "{layout.background}"')
    if previous.negative != layout.negative:
        parts.append(f'negative prompt: "{previous.negative}" -> "{layout.negative}"')
    if (previous.width, previous.height) != (layout.width, layout.height):
        parts.append(
            f"canvas: {previous.width}x{previous.height} -> {layout.width}x{layout.height}"
        )
    return "; ".join(parts) if parts else "no change"


def anchor_note(turn) -> str:
    """What a turn kept from earlier ones, e.g. `; a cat as in turn 1` ("" when nothing):
    its objects drawn to keep the look of the turn that anchors them (1-based numbers)."""
    names = dict(zip(turn.object_ids, turn.layout.names, strict=True))
    by_turn: dict[int, list[str]] = {}
    for object_id, anchor in turn.anchors.items():
        by_turn.setdefault(anchor, []).append(names[object_id])
    return "".join(
        f"; {', '.join(kept)} as in turn {anchor + 1}" for anchor, kept in sorted(by_turn.items())
    )

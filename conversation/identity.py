"""Object identity across turns: which new box continues which old object, and its seed.

Rules, in order (each step only sees what the earlier ones left unmatched):
1. Same name (case-insensitive) -> same identity. Duplicates ("a cat", "a cat") pair greedily
   by IoU, then by centre distance, so identity follows the boxes rather than list order.
2. Renamed with a similar box (IoU >= `rename_iou`) -> same identity, new description.
3. One old object gone and one new object come, boxes overlapping -> a rename too.
4. Anything left: new boxes are new identities, old ones are removed.
Same identity keeps its seed (its look changes only through its name); a new identity gets a
seed derived from the session seed and its id, so replaying a session redraws the same picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lmd.layouts.model import Box
from lmd.layouts.seeds import derive_seed


@dataclass(frozen=True)
class MatchConfig:
    """Thresholds for identity matching."""

    rename_iou: float = 0.3
    """A renamed box with at least this IoU to an old one continues it."""
    lone_rename_iou: float = 0.0
    """With exactly one object gone and one come, an IoU above this makes it a rename."""


@dataclass(frozen=True)
class Tracked:
    """An object of the previous turn: its identity, box and seed."""

    id: str
    box: Box
    seed: int


@dataclass(frozen=True)
class Assignment:
    """Identities and seeds for a new layout's boxes, in layout order."""

    ids: list[str]
    seeds: list[int]
    matched: list[int | None]
    """For each new box, the index into `previous` of the object it continues, or None."""
    removed: list[int]
    """Indexes into `previous` of the objects that vanished."""
    issued: int
    """How many identities the session has issued, counting the new ones here."""


def _distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = a.center, b.center
    return math.hypot(ax - bx, ay - by)


def _greedy(
    old: Sequence[Box], new: Sequence[Box], pairs: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Take candidate (old, new) pairs best first (IoU high, centres close), each box once."""
    ranked = sorted(
        pairs, key=lambda p: (-old[p[0]].iou(new[p[1]]), _distance(old[p[0]], new[p[1]]), p)
    )
    used_old: set[int] = set()
    used_new: set[int] = set()
    taken = []
    for i, j in ranked:
        if i not in used_old and j not in used_new:
            used_old.add(i)
            used_new.add(j)
            taken.append((i, j))
    return taken


def match_boxes(
    old: Sequence[Box], new: Sequence[Box], config: MatchConfig | None = None
) -> list[int | None]:
    """For each box in `new`, the index of the `old` box it continues, or None if it is new."""
    config = config or MatchConfig()
    result: list[int | None] = [None] * len(new)

    def free() -> tuple[list[int], list[int]]:
        taken_old = {i for i in result if i is not None}
        return (
            [i for i in range(len(old)) if i not in taken_old],
            [j for j in range(len(new)) if result[j] is None],
        )

    # 1. Same name.
    same = [
        (i, j)
        for i in range(len(old))
        for j in range(len(new))
        if old[i].name.casefold() == new[j].name.casefold()
    ]
    for i, j in _greedy(old, new, same):
        result[j] = i

    # 2. Renamed in a similar box.
    olds, news = free()
    similar = [(i, j) for i in olds for j in news if old[i].iou(new[j]) >= config.rename_iou]
    for i, j in _greedy(old, new, similar):
        result[j] = i

    # 3. One gone, one come, boxes overlapping.
    olds, news = free()
    if (
        len(olds) == 1
        and len(news) == 1
        and old[olds[0]].iou(new[news[0]]) > config.lone_rename_iou
    ):
        result[news[0]] = olds[0]
    return result


def assign(
    previous: Sequence[Tracked],
    boxes: Sequence[Box],
    *,
    session_seed: int,
    issued: int,
    config: MatchConfig | None = None,
) -> Assignment:
    """Give each of `boxes` an identity and seed, continuing `previous` where it matches.

    `issued` is how many identities the session has handed out so far; new ones are numbered
    after it ("obj{issued + 1}", ...) and never reuse an id, even one that was removed.
    """
    matched = match_boxes([t.box for t in previous], boxes, config)
    ids: list[str] = []
    seeds: list[int] = []
    for m in matched:
        if m is None:
            issued += 1
            new_id = f"obj{issued}"
            ids.append(new_id)
            seeds.append(derive_seed(session_seed, new_id))
        else:
            ids.append(previous[m].id)
            seeds.append(previous[m].seed)
    kept = {m for m in matched if m is not None}
    removed = [i for i in range(len(previous)) if i not in kept]
    return Assignment(ids=ids, seeds=seeds, matched=matched, removed=removed, issued=issued)

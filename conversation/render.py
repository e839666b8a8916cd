"""The render contract the conversation is handed (it never imports torch).

Stage 2 adapts its diffusion controller to `RenderFn` (`lmd.api.Renderer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lmd.layouts.model import Box, Layout
from PIL import Image

Progress = Callable[[str, int, int], None]
"""`progress(label, step, total)`: `label` says what is being drawn ("a cat", "background"),
`step` counts from 1 to `total`. The caller owns the bars; a renderer only calls this."""


@dataclass(frozen=True)
class Anchor:
    """An earlier turn the new picture may keep some objects' look from (shared attention):
    drawn again from its layout and seeds beside the new picture, which attends to it."""

    turn: int
    """The turn's index in the session's turns."""
    layout: Layout
    background_seed: int
    object_seeds: list[int]
    boxes: dict[int, int]
    """The new layout's box index -> the same object's box index in this turn's layout."""


@dataclass(frozen=True)
class RenderRequest:
    """One picture to draw: a layout and its seeds (the renderer reuses what it drew before)."""

    layout: Layout
    background_seed: int
    object_seeds: list[int]
    """One seed per box of `layout`, in the same order."""
    progress: Progress | None = None
    anchors: tuple[Anchor, ...] = ()
    """Earlier turns whose objects should keep their look here (a renderer without shared
    attention ignores them)."""

    def __post_init__(self) -> None:
        if len(self.object_seeds) != len(self.layout.boxes):
            raise ValueError(
                f"`object_seeds` needs one seed per box: got {len(self.object_seeds)} seeds "
                f"for {len(self.layout.boxes)} boxes"
            )


@dataclass(frozen=True)
class RenderOutput:
    """The picture, and how many objects were drawn afresh versus reused from earlier work."""

    image: Image.Image
    generated: int
    reused: int
    box_images: list[Image.Image] = field(default_factory=list)
    """Each object drawn on its own, in layout order; empty when the renderer has none."""
    anchored: dict[int, int] = field(default_factory=dict)
    """Box index -> the turn whose look it was drawn to keep (the anchors the renderer used)."""


class RenderFn(Protocol):
    """Anything called as `render(request) -> RenderOutput`; failures raise an `LmdError`."""

    def __call__(self, request: RenderRequest) -> RenderOutput: ...


def object_key(box: Box, seed: int) -> tuple[str, int, int, int]:
    """What decides an object's look apart from its place: name, box size and seed."""
    return (box.name, round(box.w), round(box.h), seed)


def drawn_key(layout: Layout, index: int, seed: int, background_seed: int) -> tuple:
    """What decides how box `index` is drawn on its own: `object_key` and the scene around it
    (background seed and prompts, canvas)."""
    box = layout.boxes[index]
    scene = (background_seed, layout.background, layout.negative, layout.width, layout.height)
    return (*object_key(box, seed), *scene)


def kept_boxes(request: RenderRequest, anchor: Anchor) -> set[int]:
    """The new layout's boxes that a renderer reusing per-object work draws exactly as in
    `anchor` anyway (same `drawn_key`): they need no shared attention."""
    layout, seeds = request.layout, request.object_seeds
    return {
        j
        for j, i in anchor.boxes.items()
        if drawn_key(layout, j, seeds[j], request.background_seed)
        == drawn_key(anchor.layout, i, anchor.object_seeds[i], anchor.background_seed)
    }

"""`lmd bench edit`: a 3-object picture, then an edit that moves one object, both timed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from lmd.layouts import Box, Layout

FIRST = Layout(
    boxes=[
        Box(name="a grey cat", x=30, y=250, w=150, h=180),
        Box(name="a brown dog", x=200, y=220, w=170, h=210),
        Box(name="a red ball", x=390, y=340, w=90, h=90),
    ],
    background="A realistic photo of a park",
    negative="",
)
OBJECT_SEEDS = [11, 22, 33]
"""Each object's seed, as a conversation keeps it across turns."""


def moved(layout: Layout, index: int, dx: float, dy: float) -> Layout:
    """`layout` with box `index` moved by (dx, dy), its size unchanged."""
    boxes = list(layout.boxes)
    b = boxes[index]
    boxes[index] = b.model_copy(update={"x": b.x + dx, "y": b.y + dy})
    return layout.model_copy(update={"boxes": boxes})


@dataclass
class EditTiming:
    first_seconds: float
    first_generated: int
    edit_seconds: float
    edit_generated: int
    edit_reused: int
    moved_name: str
    size: tuple[int, int]
    first_unet_calls: int = 0
    edit_unet_calls: int = 0

    @property
    def ratio(self) -> float:
        return self.edit_seconds / self.first_seconds

    def lines(self) -> list[str]:
        return [
            f"image: {self.size[0]}x{self.size[1]}",
            f"first picture: {self.first_seconds:.2f} s, {self.first_generated} objects generated",
            f"edit (moved {self.moved_name!r}): {self.edit_seconds:.2f} s, "
            f"{self.edit_generated} generated, {self.edit_reused} reused",
            f"ratio edit/first: {self.ratio:.2f}",
        ]


def bench_edit(renderer, *, seed: int = 0, progress=None) -> EditTiming:
    """Time a fresh 3-object picture, then the same picture with one object moved."""
    start = time.perf_counter()
    first = renderer.render(FIRST, seed=seed, object_seeds=OBJECT_SEEDS, progress=progress)
    first_seconds = time.perf_counter() - start
    edited = moved(FIRST, 2, dx=-330, dy=-250)
    start = time.perf_counter()
    edit = renderer.render(edited, seed=seed, object_seeds=OBJECT_SEEDS, progress=progress)
    edit_seconds = time.perf_counter() - start
    return EditTiming(
        first_seconds=first_seconds,
        first_generated=first.generated,
        edit_seconds=edit_seconds,
        edit_generated=edit.generated,
        edit_reused=edit.reused,
        moved_name=FIRST.boxes[2].name,
        size=first.image.size,
        first_unet_calls=first.counts.forwards,
        edit_unet_calls=edit.counts.forwards,
    )

"""The render contract the conversation is handed (it never imports torch).

Stage 2 adapts its diffusion controller to `RenderFn` (`lmd.api.Renderer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from lmd.layouts.model import Layout
from PIL import Image

Progress = Callable[[str, int, int], None]
"""`progress(label, step, total)`: `label` says what is being drawn ("a cat", "background"),
`step` counts from 1 to `total`. The caller owns the bars; a renderer only calls this."""


@dataclass(frozen=True)
class RenderRequest:
    """One picture to draw: a layout and its seeds (the renderer reuses what it drew before)."""

    layout: Layout
    background_seed: int
    object_seeds: list[int]
    """One seed per box of `layout`, in the same order."""
    progress: Progress | None = None

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


class RenderFn(Protocol):
    """Anything called as `render(request) -> RenderOutput`; failures raise an `LmdError`."""

    def __call__(self, request: RenderRequest) -> RenderOutput: ...

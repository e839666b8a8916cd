"""Tracing: a render reports its intermediate tensors by name, at no cost when nobody listens.

    recorder = TraceRecorder()
    controller.render(layout, trace=recorder)
    recorder.stacked("box0.latents")  # [steps, C, h, w]: object 0 after every step

`trace(name, value, step)` is called with a detached tensor (on the render's device; the
controller never writes into it afterwards) and the step index (0-based) where the name is
per step, else None. Names are stable across versions; `i` is the box's index in the layout:

| name | shape | when |
|---|---|---|
| `box{i}.initial_latents` | [C, h, w] | object i's starting noise (times the initial sigma) |
| `box{i}.energy` | [] | every guidance energy evaluated, in order (per step: iterations) |
| `box{i}.latents` | [C, h, w] | object i after each denoising step |
| `box{i}.coarse_mask` | [ah, aw] bool | its thresholded mask-layer attention, before SAM |
| `box{i}.mask` | [h, w] bool | its final mask, where it was drawn (after SAM) |
| `box{i}.offset` | [2] float | (x, y) in latent cells from its mask's centre to its box's |
| `box{i}.shift` | [2] int | the offset rounded to the shift grid: how far it is moved |
| `box{i}.placed_mask` | [h, w] bool | the mask shifted into its box (what composition uses) |
| `composed` | [steps + 1, C, h, w] | the composed frames (frame 0: the overall start) |
| `overall.energy` | [] | every overall guidance energy evaluated, in order |
| `overall.latents` | [C, h, w] | the scheduler's output each step (before frozen cells reset) |
| `final_latents` | [1, C, h, w] | before decoding |
| `image` | [H, W, 3] uint8 | the decoded picture, before any refiner |

Several images drawn together (`Controller.render_story`) report the overall names, `composed`,
`final_latents` and `image` per image as `image{k}.overall.latents` etc. (k: the image's
index), and the per-box names with the image's prefix too (`image{k}.box{i}.mask`).

Per-box names up to `coarse_mask` appear only for objects drawn in this render (not those
taken from a `BoxCache`), once per distinct object (two identical boxes are drawn once, as
the first); `mask`, `offset` and `placed_mask` appear for every box.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch

Trace = Callable[[str, torch.Tensor, int | None], None]


def row_name(index: int, rows: int, name: str) -> str:
    """The trace name of image `index` of `rows` drawn together: `name` itself for one image,
    `image{index}.{name}` for several."""
    return name if rows == 1 else f"image{index}.{name}"


class TraceRecorder:
    """A `Trace` that keeps every value (moved to the CPU), by name, in the order it came."""

    def __init__(self) -> None:
        self.values: dict[str, list[tuple[int | None, torch.Tensor]]] = defaultdict(list)

    def __call__(self, name: str, value: torch.Tensor, step: int | None = None) -> None:
        self.values[name].append((step, value.detach().cpu().clone()))

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def names(self) -> list[str]:
        return list(self.values)

    def last(self, name: str) -> torch.Tensor:
        """The last value reported under `name`."""
        return self.values[name][-1][1]

    def stacked(self, name: str) -> torch.Tensor:
        """Every value reported under `name`, stacked along a new first dim."""
        return torch.stack([v for _, v in self.values[name]])

    def steps(self, name: str) -> list[int | None]:
        return [s for s, _ in self.values[name]]

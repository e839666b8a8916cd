"""`lmd bench speed`: the same layout drawn with plain SD and with a method, timed and counted.

Masks come from attention (no SAM), so the figures measure the diffusion controller.
"UNet evaluations box by box" is what the same per-box work costs when each box runs alone
(the reference code's schedule): each batched call over N boxes counts N times.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from lmd.layouts import Box, Layout

if TYPE_CHECKING:
    from lmd.controller.methods import Method

NAMES = ["a grey cat", "a brown dog", "a red ball", "a green tree", "a blue car", "a yellow kite"]


def bench_layout(boxes: int) -> Layout:
    """`boxes` objects side by side on a 512 x 512 canvas, on the ground."""
    if boxes < 0:
        raise ValueError(f"`boxes` must be 0 or more but is {boxes}")
    width = 512 / max(boxes, 1)
    items = [
        Box(name=NAMES[i % len(NAMES)], x=i * width + width * 0.1, y=200, w=width * 0.8, h=260)
        for i in range(boxes)
    ]
    return Layout(boxes=items, background="A realistic photo of a park", negative="")


@dataclass
class Timing:
    method: str
    seconds: float
    forwards: int
    backwards: int
    stopped_early: int
    box_by_box_forwards: int
    box_by_box_backwards: int
    peak_bytes: int


@dataclass
class SpeedReport:
    model: str
    boxes: int
    steps: int
    size: tuple[int, int]
    device: str
    dtype: str
    worst_case: bool
    runs: list[Timing]
    denoiser: str = "UNet"  # "UNet" or "transformer"

    @property
    def method(self) -> str:
        """The method measured against plain SD."""
        return self.runs[-1].method

    @property
    def ratio(self) -> float:
        return self.runs[-1].seconds / self.runs[0].seconds

    def lines(self) -> list[str]:
        h, w = self.size
        out = [
            f"model: {self.model}  boxes: {self.boxes}  steps: {self.steps}  size: {w}x{h}  "
            f"device: {self.device}  dtype: {self.dtype}"
            + ("  (worst case: guidance never meets its threshold)" if self.worst_case else "")
        ]
        memory = "CUDA max allocated" if self.device.startswith("cuda") else "process peak RSS"
        for r in self.runs:
            out.append(
                f"{r.method:>4}: {r.seconds:8.2f} s  {self.denoiser} forwards {r.forwards} "
                f"({r.stopped_early} stopped after the guidance layers)  backwards {r.backwards}  "
                f"peak memory {r.peak_bytes / 2**20:.0f} MiB ({memory})"
            )
        m = self.runs[-1]
        out.append(
            f"denoiser evaluations of {m.method} for {self.boxes} boxes: {m.forwards} forwards "
            f"+ {m.backwards} backwards batched; box by box: {m.box_by_box_forwards} + "
            f"{m.box_by_box_backwards}"
        )
        out.append(f"ratio {m.method}/sd: {self.ratio:.2f}")
        return out


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def bench_speed(
    model: str = "random:sd15",
    *,
    boxes: int = 3,
    steps: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    height: int | None = None,
    width: int | None = None,
    worst_case: bool = False,
    seed: int = 0,
    progress=None,
    paper: bool = False,
    method: str | Method = "lmd",
    on_run: Callable[[str], None] | None = None,
) -> SpeedReport:
    """Draw the same `boxes`-object layout with `sd` and `method`; time and count both.

    `on_run(method)` is told before each timed render starts (after loading and warm-up).
    """
    from lmd.controller import Controller, LMDConfig
    from lmd.models import load_pipeline

    name = getattr(method, "name", method)
    pipe = load_pipeline(model, method=name, device=device, dtype=dtype)
    config = LMDConfig.paper() if paper else LMDConfig()
    if steps is not None:
        config = config.replace(steps=steps)
    if worst_case:
        config = config.replace(loss_threshold=0.0)
    controller = Controller(pipe, config, model_id=model)
    layout = bench_layout(boxes)
    torch_device = controller.backbone.device
    # Warm-up: the first UNet call pays one-off costs (kernels, allocator) that are not speed.
    Controller(pipe, LMDConfig(steps=1), model_id=model).render(
        layout, method="sd", height=height, width=width
    )
    runs = []
    for drawn in ("sd", method):
        if on_run is not None:
            on_run(getattr(drawn, "name", drawn))
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
            torch.cuda.reset_peak_memory_stats(torch_device)
        start = time.perf_counter()
        result = controller.render(
            layout, seed=seed, method=drawn, height=height, width=width, callback=progress
        )
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)
        c = result.counts
        runs.append(
            Timing(
                getattr(drawn, "name", drawn),
                time.perf_counter() - start,
                c.forwards,
                c.backwards,
                c.guidance_forwards,
                c.box_by_box_forwards,
                c.box_by_box_backwards,
                _peak_bytes(torch_device),
            )  # fmt: skip
        )
    w, h = result.image.size
    return SpeedReport(
        model, boxes, config.steps, (h, w), str(torch_device),
        str(controller.backbone.dtype).split(".")[-1],
        worst_case, runs, controller.backbone.denoiser_label,
    )  # fmt: skip

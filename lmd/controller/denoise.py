"""The one denoising loop every phase runs (per-box, overall, plain SD), as a generator.

    for step in denoise(run, latents, text, energy=energy):
        step.latents = keep_frozen(step.index, step.latents)  # the caller may replace them

Each step: energy guidance on the latents (when an energy is given and the step is guided),
then one classifier-free guided UNet call (the hooked layers capture what `capture(index)`
names, at token columns `columns`), then the scheduler step. The loop yields a `Step` after
every scheduler step and continues from `step.latents`, so a caller can watch, record or
replace the latents without a second loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from lmd.controller.conditioning import Conditioning, Grounding
from lmd.controller.engine import Energy, Run


@dataclass
class Step:
    index: int
    t: torch.Tensor
    latents: torch.Tensor  # after the scheduler step; replace it to change what comes next
    maps: dict[str, torch.Tensor]  # what the hooked layers captured in this step's CFG call


def denoise(
    run: Run,
    latents: torch.Tensor,
    text: Conditioning,
    *,
    energy: Energy | None = None,
    grounding: Grounding | None = None,
    capture: Callable[[int], Iterable[str]] | None = None,
    columns: torch.Tensor | None = None,
) -> Iterator[Step]:
    """Denoise `latents` [rows, C, h, w] under `text` ([uncond rows, cond rows])."""
    cfg, store = run.config, run.store
    scheduler = run.scheduler()
    rows = latents.shape[0]
    latents = latents.to(run.device, run.dtype)
    carried = torch.full((rows,), float("inf"))  # the paper's stop rule: loss of the last update
    for i, t in enumerate(scheduler.timesteps):
        if energy is not None and cfg.iterations(i) > 0:
            latents = run.guide(latents, i, t, scheduler, energy, carried)
        store.set(capture(i) if capture is not None else (), columns, cfg=True)
        gligen = grounding.at(i) if grounding is not None else None
        eps = run.cfg_eps(latents, t, text, scheduler, gligen=gligen, rows=rows)
        maps = store.maps
        store.clear()
        step = Step(i, t, scheduler.step(eps, t, latents).prev_sample, maps)
        yield step
        latents = step.latents

"""The one denoising loop every phase runs (per-box, overall, one pass), as a generator.

    for step in denoise(run, latents, text, negative, energy=energy):
        step.latents = keep_frozen(step.index, step.latents)  # the caller may replace them

Each step: the hooks' per-step state, energy guidance on the latents (when an energy is given
and the step is guided), then one classifier-free guided denoiser call (the hooked layers
capture what `capture(index)` names, at token columns `columns`; the hooks' `predict` may run
extra passes around it), then the scheduler step.
The hooks' attention processors are installed for the whole phase. The loop yields a `Step`
after every scheduler step and continues from `step.latents`, so a caller can watch, record
or replace the latents without a second loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from lmd.controller.attention import wrapped
from lmd.controller.conditioning import Conditioning
from lmd.controller.config import Guidance, Schedule
from lmd.controller.engine import Energy, Run
from lmd.controller.phase import Hooks


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
    negative: Conditioning,
    *,
    energy: Energy | None = None,
    hooks: Hooks | None = None,
    capture: Callable[[int], Iterable[str]] | None = None,
    columns: torch.Tensor | None = None,
    schedule: Schedule | None = None,
    guidance: Guidance | None = None,
    phase: str = "overall",
) -> Iterator[Step]:
    """Denoise `latents` [rows, C, h, w] under `text` (one row each) and `negative` (the
    unconditional text, one row each). `schedule` and `guidance` default to the run's config.
    After the caller has seen a step, the run's `on_step(phase, index, t, latents)` may
    replace its latents."""
    store = run.store
    schedule = schedule or run.config.schedule
    hooks = hooks or Hooks()
    scheduler = run.backbone.scheduler(schedule.steps, run.latent_hw)
    rows = latents.shape[0]
    latents = latents.to(run.device, run.dtype)
    carried = torch.full((rows,), float("inf"))  # the paper's stop rule: loss of the last update
    with wrapped(run.backbone.denoiser, hooks.processors()):
        for i, t in enumerate(scheduler.timesteps):
            hooks.step(i, t)
            if energy is not None and schedule.iterations(i) > 0:
                latents = run.guide(
                    latents, i, t, scheduler, energy, carried, guidance=guidance,
                    schedule=schedule,
                )  # fmt: skip
            store.set(capture(i) if capture is not None else (), columns)
            out = hooks.predict(
                i,
                lambda i=i, t=t, latents=latents: run.predict(
                    latents, t, text, negative, scheduler, hooks.inputs(i), schedule.cfg_scale
                ),
            )
            maps = store.maps
            store.clear()
            step = Step(i, t, run.backbone.step(scheduler, out, t, latents), maps)
            yield step
            if run.on_step is not None:
                changed = run.on_step(phase, i, t, step.latents)
                if changed is not None:
                    step.latents = changed.to(step.latents.device, step.latents.dtype)
            latents = step.latents

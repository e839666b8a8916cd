"""What every flow's phases share: one render's state, counted denoiser calls and the guidance
loop. Everything model-specific is the backbone's (`run.backbone`), everything
method-specific the method's (`run.method` and its hooks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from PIL import Image

from lmd.controller.attention import AttentionStore, StopForward
from lmd.controller.backbones import Backbone, StepInputs, family_of
from lmd.controller.conditioning import Conditioning
from lmd.controller.config import Guidance, LMDConfig, Schedule
from lmd.controller.energy import guidance_update
from lmd.controller.methods import Method, get_method
from lmd.controller.phase import Hooks, Phase, combine
from lmd.controller.trace import Trace

Callback = Callable[[str, int, int], None]
HookSource = Callable[["Run", Phase], Hooks | None]
Energy = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""`energy(z, rows, t, index)` -> the energies [len(rows)] of model input `z` at step `index`."""


@dataclass
class Counts:
    forwards: int = 0  # denoiser calls (a CFG batch of any size is one call)
    backwards: int = 0
    guidance_forwards: int = 0  # forwards stopped after the last guidance layer
    box_by_box_forwards: int = 0  # what the same work costs one box at a time
    box_by_box_backwards: int = 0
    denoiser: str = "UNet"  # what the calls ran: "UNet" or "transformer" (for messages)


@dataclass
class Run:
    """One render's state: the pipeline, settings, the attention store and the counters."""

    pipe: object
    config: LMDConfig
    method: Method
    store: AttentionStore
    image_hw: tuple[int, int]
    latent_hw: tuple[int, int]
    callback: Callback | None = None
    counts: Counts = field(default_factory=Counts)
    trace: Trace | None = None
    backbone: Backbone | None = None  # read off the pipeline when not given
    box_batch_size: int | None = None  # None: what fits (the backbone's estimate)
    on_step: Callable | None = None  # callback_on_step_end(phase, step, t, latents)
    cond_rows: slice = field(default_factory=lambda: slice(None))  # of the call under way
    extra: list[HookSource] = field(default_factory=list)
    """Hook sources besides the method, for the phases that draw the images ("overall",
    "image"): `source(run, phase)` -> `Hooks` or None (ConsiStory's shared attention)."""

    def __post_init__(self) -> None:
        self.method = get_method(self.method)  # a name or a `Method`
        if self.backbone is None:
            self.backbone = family_of(self.pipe)
        self.counts.denoiser = self.backbone.denoiser_label

    def hooks(self, phase: Phase, method: bool = True) -> Hooks | None:
        """What changes in `phase`: the method's hooks (unless `method` is False) combined
        with every extra source's."""
        own = self.method.hooks(self, phase) if method else None
        if not self.extra:
            return own
        return combine([own, *(source(self, phase) for source in self.extra)])

    def emit(self, name: str, value: torch.Tensor, step: int | None = None) -> None:
        """Report a named intermediate to the trace, if there is one (see `trace.py`)."""
        if self.trace is not None:
            self.trace(name, value.detach(), step)

    def progress(self, phase: str, step: int, total: int) -> None:
        if self.callback is not None:
            self.callback(phase, step, total)

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.dtype

    def scheduler(self, steps: int | None = None):
        """A fresh scheduler set to `steps` (default: the config's)."""
        return self.backbone.scheduler(steps or self.config.steps, self.latent_hw)

    @property
    def init_sigma(self) -> float:
        return self.backbone.init_sigma(self.scheduler())

    def encode(self, texts: list[str]) -> Conditioning:
        """One conditioning row per text, encoded as the backbone does."""
        return self.backbone.encode(texts, self.image_hw)

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        return self.backbone.decode(latents)

    # Denoiser calls.
    def call(
        self, latents, t, text: Conditioning, kwargs: dict, cond: slice = slice(None), rows=1
    ) -> torch.Tensor | None:
        """One counted denoiser call (`cond`: its conditional rows, which the attention store
        and a method's processors read as `run.cond_rows`); returns None when the store ended
        it early."""
        self.store.cond = self.cond_rows = cond
        self.counts.forwards += 1
        self.counts.box_by_box_forwards += rows
        try:
            return self.backbone.forward(latents, t, text, kwargs)
        except StopForward:
            self.counts.guidance_forwards += 1
            return None

    def predict(
        self,
        latents: torch.Tensor,
        t,
        text: Conditioning,
        negative: Conditioning,
        scheduler,
        inputs: StepInputs | None = None,
        cfg_scale: float | None = None,
    ) -> torch.Tensor:
        """The classifier-free guided model output for `latents` [rows, ...] (one counted call
        however the backbone batches it)."""
        rows = latents.shape[0]

        def call(x, tt, cond, kwargs, cond_rows):
            return self.call(x, tt, cond, kwargs, cond_rows, rows=rows)

        scale = self.config.cfg_scale if cfg_scale is None else cfg_scale
        return self.backbone.predict(call, latents, t, text, negative, scale, scheduler, inputs)

    def guide(
        self,
        latents: torch.Tensor,
        index: int,
        t,
        scheduler,
        energy: Energy,
        carried: torch.Tensor | None = None,
        *,
        guidance: Guidance | None = None,
        schedule: Schedule | None = None,
    ) -> torch.Tensor:
        """Energy guidance at one step for every row of `latents` (Lian et al. 2024, Eq. 3).

        `energy(z, rows, t, index)` runs a guidance forward on the model input `z` of rows
        `rows` at timestep `t` (step index `index`) and returns their energies.
        Stop rule "recompute": a row whose energy is at or below the threshold gets no update
        and no more iterations this step. Stop rule "carried" (the paper's): a row iterates
        while the energy of its previous evaluation, kept in `carried` [rows] across steps,
        is above the threshold, and every evaluation is followed by an update.
        `guidance` and `schedule` default to the run's config.
        """
        g = guidance or self.config.group(Guidance)
        schedule = schedule or self.config.schedule
        step = self.backbone.noise_level(scheduler, index, t, g.guidance_step_rule)
        rows = torch.arange(latents.shape[0], device=latents.device)
        paper = g.stop_rule == "carried"
        if paper:
            if carried is None:
                raise ValueError("stop rule 'carried' needs the energies `carried` over steps")
            rows = rows[carried.to(rows.device) > g.loss_threshold]
        for _ in range(schedule.iterations(index)):
            if not len(rows):
                break
            z = latents[rows].detach().requires_grad_(True)
            with torch.enable_grad():
                e = energy(self.backbone.model_input(scheduler, z, t), rows, t, index)
                over = e.detach() > g.loss_threshold
                step_rows = torch.ones_like(over) if paper else over
                if not bool(step_rows.any()):
                    break
                (grad,) = torch.autograd.grad((g.loss_scale * e[step_rows]).sum(), z)
            self.counts.backwards += 1
            self.counts.box_by_box_backwards += int(step_rows.sum())
            latents = latents.clone()
            latents[rows[step_rows]] = guidance_update(z.detach()[step_rows], grad[step_rows], step)
            if paper:
                carried[rows.to(carried.device)] = e.detach().to(carried.dtype)
            rows = rows[over]
        return latents.detach()

"""`--method migc` and `--method migc++`: MIGC's trained instance shading in one pass.

The one-pass flow denoises the whole image from the overall prompt; for the first steps the
mid block's and the first up block's cross-attention layers are replaced, on the conditional
rows, by MIGC's instance shading of every box (each instance's own prompt, "a red car", on
its box; `processor.py`). The authors shade while the step index is not above `MIGCsteps`
(25 of 50: the 26 steps 0..25, migc_pipeline.py:125); lmd keeps their rule and scales
`MIGCsteps` with the step count (`shade_steps` of 50, halves up). MIGC++ also fuses every
other cross-attention layer's output with its instances' (the naive fuser) on every step.

Weights (`settings.checkpoint`): a published file (`MIGC_SD14.ckpt`, `MIGC++_SD14.ckpt`, see
`checkpoint.py` and the README for where they come from and their licence), or "random" for
random weights of the right shapes (the `random:*` models, tests). They load once per UNet
(`load`), kept beside it, and are for SD 1.x: other families are refused before any work.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from lmd.controller.methods.base import Method
from lmd.controller.methods.migc.checkpoint import MIGC_PLUS, RANDOM, load_shaders, random_shaders
from lmd.controller.methods.migc.processor import MIGCState, processors, row_instances
from lmd.controller.phase import Hooks, Phase, Wrap

CHECKPOINTS = {
    "migc": "MIGC_SD14.ckpt",
    "migc++": "MIGC++_SD14.ckpt",
}
_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # UNet -> {checkpoint: ...}


@dataclass(frozen=True)
class MIGCSettings:
    PAPER: ClassVar[dict[str, Any]] = {}

    checkpoint: str | None = None  # a checkpoint file, or "random"; None: not given
    shade_steps: int = 25  # MIGCsteps of 50: shade while the step index is <= this (scaled)
    seed: int = 0  # the SAC's slot shuffle (the authors draw it from the global generator)

    def steps_at(self, steps: int) -> int:
        """MIGCsteps at `steps` steps: `shade_steps` of 50, to the nearest step (halves up)."""
        return math.floor(self.shade_steps * steps / 50 + 0.5)


@dataclass(frozen=True)
class MIGCMethod(Method):
    name = "migc"
    summary = "migc (MIGC's trained instance shading, one pass; SD 1.x, needs its weights)"
    flow = "one-pass"
    variant: ClassVar[str] = "migc"
    settings: MIGCSettings = field(default_factory=MIGCSettings)

    @property
    def weights_file(self) -> str:
        """The published checkpoint this variant loads."""
        return CHECKPOINTS[self.variant]

    def check_family(self, family: str, label: str) -> None:
        if family != "sd1":
            raise ValueError(
                f"`method` '{self.name}' has published weights for SD 1.x only, not "
                f"{label}; use method 'lmd' or 'attnmod'"
            )

    def check(self, pipe, backbone) -> None:
        super().check(pipe, backbone)
        if self.settings.checkpoint is None:
            raise ValueError(
                f"`method` '{self.name}' needs its weights: pass the checkpoint file "
                f"({self.weights_file}) as `migc_checkpoint`, or 'random'"
            )

    def load(self, pipe, backbone) -> dict:
        """The MIGC layers of `pipe` for this method's checkpoint (loaded once per UNet)."""
        unet = backbone.denoiser
        loaded = _LOADED.setdefault(unet, {})
        key = (self.variant, self.settings.checkpoint)
        if key not in loaded:
            loaded[key] = self._shaders(pipe)
        return loaded[key]

    def _shaders(self, pipe) -> dict:
        plus = self.variant == "migc++"
        if self.settings.checkpoint == RANDOM:
            return random_shaders(pipe, seed=0, plus=plus)
        variant, shaders = load_shaders(self.settings.checkpoint, pipe)
        if (variant == MIGC_PLUS) != plus:
            raise ValueError(
                f"{self.settings.checkpoint} holds {variant} weights; use method "
                f"'{'migc++' if variant == MIGC_PLUS else 'migc'}'"
            )
        return shaders

    def hooks(self, run, phase: Phase) -> MIGCHooks:
        shaders = self.load(run.pipe, run.backbone)
        rows = tuple(
            row_instances(
                run.backbone, [o.name for o in row.objects], [o.xyxy for o in row.objects],
                phase.image_hw, phase.latent_hw,
            )
            for row in phase.rows
        )  # fmt: skip
        generator = torch.Generator().manual_seed(self.settings.seed)
        state = MIGCState(rows=rows, cond=lambda: run.cond_rows, generator=generator)
        layers: dict = dict(shaders)
        if self.variant == "migc++":  # the naive fuser on every other cross-attention layer
            layers.update({n: None for n in run.backbone.attention_modules("cross")
                           if n not in shaders})  # fmt: skip
        return MIGCHooks(state, layers, self.settings.steps_at(phase.steps), self.variant)


@dataclass(frozen=True)
class MIGCPlus(MIGCMethod):
    name = "migc++"
    summary = "migc++ (MIGC++'s instance shading with its refining fuser; SD 1.x)"
    variant: ClassVar[str] = "migc++"


class MIGCHooks(Hooks):
    """MIGC's processors for a phase: shading while the step index is <= `shade_until`
    (MIGC++: fusing on every step)."""

    def __init__(self, state: MIGCState, layers: dict, shade_until: int, variant: str):
        self.state, self.layers = state, layers
        self.shade_until, self.variant = shade_until, variant

    def processors(self) -> dict[str, Wrap]:
        return processors(self.layers, self.state)

    def step(self, index: int, t) -> None:
        self.state.shade = index <= self.shade_until
        self.state.fuse = self.variant == "migc++"

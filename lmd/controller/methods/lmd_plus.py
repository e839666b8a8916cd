"""LMD+ (Lian et al. 2024, Sec. 4): LMD on a GLIGEN UNet. Each object is drawn in place,
grounded by GLIGEN on its box and phrase for the first `gligen_ratio` of the steps, without
per-box energy guidance; SAM is prompted with the box; the overall image is grounded on every
box (at most GLIGEN's `max_objects` slots) and guided.

The paper-versus-lmd choices of LMD+ (`plus_guidance_grounding`, `plus_overall_phrase`,
`gligen_keep`) stay in `LMDConfig` with the other departures, so `LMDConfig.paper()` sets them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lmd.controller.conditioning import Grounding
from lmd.controller.config import LMDConfig
from lmd.controller.methods.base import BoxSettings, Method, normalised
from lmd.controller.noise import Cells

GLIGEN_MODEL = "gligen/diffusers-generation-text-box"


@dataclass(frozen=True)
class PlusSettings(BoxSettings):
    blend_ratio: float = 0.1
    box_guidance: bool = False  # GLIGEN grounds each box instead
    gligen_ratio: float = 0.4  # grounding tokens on for the first 40% of steps
    max_objects: int = 30  # GLIGEN's trained number of grounding slots

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.gligen_ratio <= 1:
            raise ValueError(f"`gligen_ratio` is out of range: {self.gligen_ratio!r}")
        if self.max_objects < 1:
            raise ValueError(f"`max_objects` is out of range: {self.max_objects!r}")

    def gligen_steps(self, steps: int) -> int:
        return int(steps * self.gligen_ratio)


@dataclass(frozen=True)
class LMDPlus(Method):
    name = "lmd+"
    summary = "lmd+ (with GLIGEN)"
    gated_unet = True
    default_model = GLIGEN_MODEL
    settings: PlusSettings = field(default_factory=PlusSettings)

    def check(self, pipe, family) -> None:
        if not family.gligen:
            raise ValueError(
                f"`method` 'lmd+' needs GLIGEN weights, and there are none public for "
                f"{family.label}; use method 'lmd'"
            )
        if getattr(pipe.unet, "position_net", None) is None:
            raise ValueError(
                "`method` 'lmd+' needs a GLIGEN UNet (attention_type='gated'); load the model "
                f"for lmd+ (e.g. {GLIGEN_MODEL})"
            )

    def draw_at(self, cells: Cells, latent_hw, config: LMDConfig) -> Cells:
        return cells  # in place

    def box_grounding(self, run, jobs) -> Grounding:
        boxes = [[normalised(j.cells, run.latent_hw)] for j in jobs]
        return self._grounding(run, boxes, [[j.name] for j in jobs])

    def sam_prompts(self, run, jobs, coarse, peaks, box_masks):
        """The box is SAM's prompt, and the reference its answers are checked against."""
        (ih, iw), lhw = run.image_hw, run.latent_hw
        scale = (iw, ih, iw, ih)
        xyxy = [tuple(v * s for v, s in zip(normalised(j.cells, lhw), scale, strict=True))
                for j in jobs]  # fmt: skip
        return None, xyxy, box_masks

    def offset(self, mask, drawn: Cells, box: Cells, centre, latent_hw, config: LMDConfig):
        return box.x - drawn.x, box.y - drawn.y

    def overall_grounding(self, run, objects, boxes) -> Grounding | None:
        if not boxes:
            return None
        xyxy, names = grounding(run.config, objects, boxes, self.settings.max_objects)
        return self._grounding(run, xyxy, names)

    def _grounding(self, run, boxes, phrases) -> Grounding:
        """The CFG batch gets [uncond, cond], where the unconditional half has every slot
        masked (GLIGEN's null tokens); the guidance forward gets the conditional inputs, or
        the null ones (`plus_guidance_grounding`)."""
        cond = run.gligen(boxes, phrases, self.settings.max_objects)
        null = {**cond, "masks": torch.zeros_like(cond["masks"])}
        return Grounding(
            {k: torch.cat([null[k], cond[k]]) for k in cond},
            null if run.config.plus_guidance_grounding == "null" else cond,
            self.settings.gligen_steps(run.config.steps),
        )


def grounding(cfg: LMDConfig, objects, boxes, slots: int = PlusSettings.max_objects):
    """GLIGEN's boxes and phrases for the overall image (one row), at most `slots`.

    The paper's code grounds the first boxes in prompt order, each on its object's counted
    phrase; lmd can keep the largest boxes (`gligen_keep`) and ground each on its own name.
    """
    phrase = {b: o.phrase for o in objects for b in o.boxes}
    if cfg.gligen_keep == "first":
        order = [b for o in objects for b in o.boxes] or list(range(len(boxes)))
    else:
        order = sorted(range(len(boxes)), key=lambda i: -boxes[i].cells.w * boxes[i].cells.h)
    grounded = order[:slots]
    counted = cfg.plus_overall_phrase == "counted"
    names = [phrase.get(i, boxes[i].name) if counted else boxes[i].name for i in grounded]
    return [[boxes[i].xyxy for i in grounded]], [names]

"""LMD+ (Lian et al. 2024, Sec. 4): LMD on a GLIGEN UNet. Each object is drawn in place,
grounded by GLIGEN on its box and phrase for the first `gligen_ratio` of the steps, without
per-box energy guidance; SAM is prompted with the box; the overall image is grounded on every
box (at most GLIGEN's `max_objects` slots) and guided.

GLIGEN's inputs (Li et al. 2023: each grounded box as normalised xyxy, its phrase's pooled
text embedding, a mask of used slots) reach the UNet as its `cross_attention_kwargs["gligen"]`
for the grounded steps; past them they are left out and diffusers skips the gated layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from lmd.controller.backbones import StepInputs
from lmd.controller.methods.base import BoxMethod, BoxSettings, normalised, overall_only
from lmd.controller.noise import Cells
from lmd.controller.phase import Hooks, Phase, PhaseObject

GLIGEN_MODEL = "gligen/diffusers-generation-text-box"


@dataclass(frozen=True)
class PlusSettings(BoxSettings):
    PAPER: ClassVar[dict[str, Any]] = {
        **BoxSettings.PAPER,
        "plus_guidance_grounding": "null",
        "plus_overall_phrase": "counted",
        "gligen_keep": "first",
    }

    blend_ratio: float = 0.1
    box_guidance: bool = False  # GLIGEN grounds each box instead
    gligen_ratio: float = 0.4  # grounding tokens on for the first 40% of steps
    max_objects: int = 30  # GLIGEN's trained number of grounding slots
    plus_guidance_grounding: Literal["null", "conditional"] = "null"
    """Paper: the guidance forward gets null grounding (masks 0); or the sampling one."""
    plus_overall_phrase: Literal["counted", "name"] = overall_only("counted")
    """Paper: each box is grounded on its counted phrase ("two cats"); or its own name."""
    gligen_keep: Literal["largest", "first"] = overall_only("largest")
    """Past 30 boxes. Paper: grounds the first 30 in prompt order; lmd: the largest 30."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.gligen_ratio <= 1:
            raise ValueError(f"`gligen_ratio` is out of range: {self.gligen_ratio!r}")
        if self.max_objects < 1:
            raise ValueError(f"`max_objects` is out of range: {self.max_objects!r}")

    def gligen_steps(self, steps: int) -> int:
        return int(steps * self.gligen_ratio)


@dataclass(frozen=True)
class LMDPlus(BoxMethod):
    name = "lmd+"
    summary = "lmd+ (with GLIGEN)"
    gated_unet = True
    default_model = GLIGEN_MODEL
    settings: PlusSettings = field(default_factory=PlusSettings)

    def check(self, pipe, backbone) -> None:
        if not backbone.gligen:
            raise ValueError(
                f"`method` 'lmd+' needs GLIGEN weights, and there are none public for "
                f"{backbone.label}; use method 'lmd'"
            )
        if not backbone.has_gligen():
            raise ValueError(
                "`method` 'lmd+' needs a GLIGEN UNet (attention_type='gated'); load the model "
                f"for lmd+ (e.g. {GLIGEN_MODEL})"
            )

    def draw_at(self, cells: Cells, latent_hw, config) -> Cells:
        return cells  # in place

    def hooks(self, run, phase: Phase) -> GligenHooks:
        """GLIGEN grounding: per box in the per-box phase, every kept box in the overall one."""
        if phase.name == "boxes":
            rows = [[(o.xyxy, o.name) for o in row.objects] for row in phase.rows]
        else:
            rows = [grounding(self.settings, row.objects) for row in phase.rows]
        boxes = [[b for b, _ in row] for row in rows]
        phrases = [[p for _, p in row] for row in rows]
        cond = gligen_inputs(run.backbone, boxes, phrases, self.settings.max_objects)
        null = {**cond, "masks": torch.zeros_like(cond["masks"])}
        guided = null if self.settings.plus_guidance_grounding == "null" else cond
        return GligenHooks(cond, null, guided, self.settings.gligen_steps(phase.steps))

    def sam_prompts(self, run, jobs, coarse, peaks, box_masks, masks):
        """The box is SAM's prompt, and the reference its answers are checked against."""
        (ih, iw), lhw = run.image_hw, run.latent_hw
        scale = (iw, ih, iw, ih)
        xyxy = [tuple(v * s for v, s in zip(normalised(j.cells, lhw), scale, strict=True))
                for j in jobs]  # fmt: skip
        return None, xyxy, box_masks

    def offset(self, mask, drawn: Cells, box: Cells, centre, latent_hw, config):
        return box.x - drawn.x, box.y - drawn.y


@dataclass
class GligenHooks(Hooks):
    """GLIGEN's inputs for one phase, on for step index < `steps`: `cond` for the conditional
    rows, `null` (every slot masked: GLIGEN's null tokens) for the unconditional ones, `guided`
    for the guidance forward."""

    cond: dict[str, torch.Tensor]
    null: dict[str, torch.Tensor]
    guided: dict[str, torch.Tensor]
    steps: int

    def inputs(self, index: int) -> StepInputs | None:
        if index >= self.steps:
            return None  # the UNet skips its gated layers

        def kw(x):
            return {"cross_attention_kwargs": {"gligen": x}}

        return StepInputs(kw(self.cond), kw(self.null), kw(self.guided))


def gligen_inputs(backbone, boxes: list[list[tuple]], phrases: list[list[str]], slots: int):
    """GLIGEN's conditional inputs for rows of (normalised xyxy boxes, phrases), at most
    `slots` per row; every row's phrases go through the text encoder in one call."""
    device, dtype = backbone.device, backbone.dtype
    dim = backbone.denoiser.config.cross_attention_dim
    rows = len(boxes)
    box_t = torch.zeros(rows, slots, 4, device=device, dtype=dtype)
    emb_t = torch.zeros(rows, slots, dim, device=device, dtype=dtype)
    mask_t = torch.zeros(rows, slots, device=device, dtype=dtype)
    kept = [min(len(b), len(p), slots) for b, p in zip(boxes, phrases, strict=True)]
    texts = [t for row, n in zip(phrases, kept, strict=True) for t in row[:n]]
    pooled = backbone.pooled(texts) if texts else None
    at = 0
    for r, n in enumerate(kept):
        if n:
            box_t[r, :n] = torch.tensor(boxes[r][:n], dtype=dtype)
            emb_t[r, :n] = pooled[at : at + n]
            mask_t[r, :n] = 1
            at += n
    return {"boxes": box_t, "positive_embeddings": emb_t, "masks": mask_t}


def grounding(settings: PlusSettings, objects: tuple[PhaseObject, ...]):
    """GLIGEN's (box, phrase) pairs for the overall image, at most `max_objects`.

    `objects` are the row's boxes in prompt order (each with its object's counted phrase).
    The paper's code grounds the first boxes in prompt order, each on its object's counted
    phrase; lmd can keep the largest boxes (`gligen_keep`) and ground each on its own name.
    """
    if settings.gligen_keep == "first":
        order = list(objects)
    else:
        order = sorted(objects, key=lambda o: (-o.cells.w * o.cells.h, o.index))
    counted = settings.plus_overall_phrase == "counted"
    return [(o.xyxy, o.phrase if counted else o.name) for o in order[: settings.max_objects]]

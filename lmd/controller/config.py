"""`LMDConfig`: every hyperparameter of stage 2, with the published defaults of LMD / LMD+.

Numbers are those of Lian et al. (TMLR 2024, arXiv 2305.13655) and its reference code for
50 DDIM steps. Step-indexed settings (guidance steps, the iteration schedule, the mask
attention window) are written for `reference_steps` = 50 and scale with `steps`, so a
25-step render guides the first 15 steps just as a 50-step render guides the first 30.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

QUALITY_NEGATIVE = (
    "artifacts, blurry, smooth texture, bad quality, distortions, unrealistic, "
    "distorted image, bad proportions, duplicate"
)
PER_BOX_NEGATIVE = "two, many, group, occlusion, occluded, side, border, collate"
PUBLISHED_ITERATIONS = (4,) * 5 + (3,) * 5 + (2,) * 5 + (2,) * 5 + (1,) * 10

METHODS = ("lmd", "lmd+", "sd")


@dataclass(frozen=True)
class LMDConfig:
    """Hyperparameters of the LMD / LMD+ controller (published defaults; override by keyword)."""

    # Sampling.
    steps: int = 50
    cfg_scale: float = 7.5
    reference_steps: int = 50  # the step count the step-indexed settings below are written for

    # Noise: inside a box, bg * sqrt(1 - r) + fg * sqrt(r).
    fg_blend_ratio: float = 0.01  # r for LMD
    fg_blend_ratio_plus: float = 0.1  # r for LMD+

    # Energy (Eq. 2 of the paper) and the guidance update.
    fg_weight: float = 1.0
    bg_weight: float = 4.0
    topk_ratio: float = 0.2
    loss_scale: float = 5.0
    loss_threshold: float = 5.0  # no update while the energy is at or below this
    guidance_steps: int = 30  # guidance for step index < this (of reference_steps)
    guidance_iterations: tuple[int, ...] = PUBLISHED_ITERATIONS  # max updates per step index
    per_box_guidance: bool = True  # LMD guides each box's own generation
    per_box_guidance_plus: bool = False  # LMD+ leaves it to GLIGEN
    overall_guidance: bool = True
    transfer_weight: float = 2.0  # attention transfer (L1 to the per-box attention)
    transfer_eps: float = 1e-5

    # Composition.
    frozen_ratio: float = 0.5  # first half of the overall steps keeps the composed latents
    center_bottom: float = 0.8  # LMD draws each object centred, its bottom at 0.8 of the height
    shift_grid: int = 8  # the centred object is shifted in steps of 1/shift_grid of the image

    # Masks.
    mask_attn_start: int = 10  # average the mask layer's attention over steps [start, steps)
    gaussian_sigma: float = 1.5
    coarse_threshold: float = 0.25
    sam_min_confidence: float = 0.85
    sam_min_coarse_iou: float = 0.25

    # LMD+ (GLIGEN).
    gligen_ratio: float = 0.4  # grounding tokens on for the first 40% of steps
    gligen_max_objects: int = 30  # GLIGEN's trained number of grounding slots

    # Prompts.
    quality_negative: str = QUALITY_NEGATIVE
    per_box_negative: str = PER_BOX_NEGATIVE

    # Memory: boxes generated together in one batch (CFG batch = 2 x this).
    box_batch_size: int = 8

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "cfg_scale": self.cfg_scale >= 0,
            "fg_blend_ratio": 0 <= self.fg_blend_ratio <= 1,
            "fg_blend_ratio_plus": 0 <= self.fg_blend_ratio_plus <= 1,
            "topk_ratio": 0 < self.topk_ratio <= 1,
            "frozen_ratio": 0 <= self.frozen_ratio <= 1,
            "gligen_ratio": 0 <= self.gligen_ratio <= 1,
            "guidance_iterations": len(self.guidance_iterations) > 0,
            "box_batch_size": self.box_batch_size >= 1,
            "shift_grid": self.shift_grid >= 1,
            "center_bottom": 0 < self.center_bottom <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"`{name}` is out of range: {getattr(self, name)!r}")
        object.__setattr__(self, "guidance_iterations", tuple(self.guidance_iterations))

    def replace(self, **changes) -> LMDConfig:
        return dataclasses.replace(self, **changes)

    # Step-indexed settings, scaled from reference_steps to steps.
    def _scaled(self, index: int) -> int:
        return round(index * self.steps / self.reference_steps)

    @property
    def guidance_until(self) -> int:
        """Guidance runs for step index < this."""
        return self._scaled(self.guidance_steps)

    @property
    def mask_attn_from(self) -> int:
        """The mask attention is averaged over step indices >= this (at least the last step)."""
        return min(self._scaled(self.mask_attn_start), self.steps - 1)

    @property
    def frozen_steps(self) -> int:
        return int(self.steps * self.frozen_ratio)

    @property
    def gligen_steps(self) -> int:
        return int(self.steps * self.gligen_ratio)

    def iterations(self, index: int) -> int:
        """Maximum guidance updates at step `index` (the schedule read at the scaled index)."""
        if index >= self.guidance_until:
            return 0
        ref = math.floor(index * self.reference_steps / self.steps)
        return self.guidance_iterations[min(ref, len(self.guidance_iterations) - 1)]

    def blend_ratio(self, method: str) -> float:
        return self.fg_blend_ratio_plus if method == "lmd+" else self.fg_blend_ratio

    def box_guidance(self, method: str) -> bool:
        return self.per_box_guidance_plus if method == "lmd+" else self.per_box_guidance

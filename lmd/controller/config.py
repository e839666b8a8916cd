"""`LMDConfig`: every hyperparameter of stage 2, with the published defaults of LMD / LMD+.

Numbers are those of Lian et al. (TMLR 2024, arXiv 2305.13655) and its reference code for
50 DDIM steps. Step-indexed settings (guidance steps, the iteration schedule, the mask
attention window) are written for `reference_steps` = 50 and scale with `steps`, so a
25-step render guides the first 15 steps just as a 50-step render guides the first 30.

Where lmd computes something other than the paper's code, the choice is a named field below
(under "Departures") whose docstring says what the paper's code does. The defaults follow the
paper's code except where lmd fixes a demonstrable flaw (`tests/test_departures.py` shows
each flaw); `LMDConfig.paper()` switches every departure to the paper's behaviour, flaws
included, and `tests/test_parity.py` pins it against recorded runs of the paper's code.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

QUALITY_NEGATIVE = (
    "artifacts, blurry, smooth texture, bad quality, distortions, unrealistic, "
    "distorted image, bad proportions, duplicate"
)
PER_BOX_NEGATIVE = "two, many, group, occlusion, occluded, side, border, collate"
PUBLISHED_ITERATIONS = (4,) * 5 + (3,) * 5 + (2,) * 5 + (2,) * 5 + (1,) * 10

# What the paper's code (TonyLianLong/LLM-groundedDiffusion) does, for every departure field.
PAPER: dict[str, Any] = {
    "energy_tokens": "phrase",
    "word_token": "last",
    "token_search": "first",
    "prompt_order": "sorted",
    "object_seed_rule": "index",
    "scale_step_settings": False,
    "stop_rule": "carried",
    "centre_half_cell": False,
    "frame0_paste": "box",
    "mask_resize": "bilinear",
    "sam_point": "corner",
    "plus_guidance_grounding": "null",
    "plus_overall_phrase": "counted",
    "gligen_keep": "first",
}

# Settings the per-box generation never reads, so a cached object outlives a change to them...
OVERALL_ONLY = (
    "overall_guidance", "transfer_weight", "transfer_eps", "frozen_ratio", "shift_grid",
    "centre_half_cell", "frame0_paste", "prompt_order", "object_seed_rule", "fg_seed_start",
    "plus_overall_phrase", "gligen_keep",
)  # fmt: skip
# ...and, for a method whose per-box generation is not guided, the guidance's own settings.
GUIDANCE_ONLY = (
    "energy_tokens", "stop_rule", "plus_guidance_grounding", "loss_threshold", "loss_scale",
    "fg_weight", "bg_weight", "topk_ratio", "guidance_iterations",
)  # fmt: skip


@dataclass(frozen=True)
class LMDConfig:
    """Hyperparameters of the LMD / LMD+ controller (published defaults; override by keyword)."""

    # Sampling.
    steps: int = 50
    cfg_scale: float = 7.5
    reference_steps: int = 50  # the step count the step-indexed settings below are written for

    # Noise (the blend ratio inside a box is the method's setting, see `methods/`).
    fg_seed_start: int = 20  # object_seed_rule "index": object k gets fg_seed_start + k

    # Energy (Eq. 2 of the paper) and the guidance update.
    fg_weight: float = 1.0
    bg_weight: float = 4.0
    topk_ratio: float = 0.2
    loss_scale: float = 5.0
    loss_threshold: float = 5.0  # no update while the energy is at or below this
    guidance_steps: int = 30  # guidance for step index < this (of reference_steps)
    guidance_iterations: tuple[int, ...] = PUBLISHED_ITERATIONS  # max updates per step index
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

    # Prompts.
    quality_negative: str = QUALITY_NEGATIVE
    per_box_negative: str = PER_BOX_NEGATIVE

    # Memory: boxes generated together in one batch (CFG batch = 2 x this).
    box_batch_size: int | None = None  # None: what fits on CUDA (`memory.py`), else 8

    # Departures from the paper's code (its behaviour is in PAPER; `paper()` applies it).
    energy_tokens: Literal["phrase", "head"] = "phrase"
    """Paper: the energy averages every token of the phrase ("a red car"); "head": the noun only."""
    word_token: Literal["head", "last"] = "head"
    """Mask/transfer token. Paper: the name's last word ("a cat wearing a hat": hat); lmd: head."""
    token_search: Literal["position", "first"] = "position"
    """Paper: a phrase's first match in the prompt (may be the background's); lmd: its own place."""
    prompt_order: Literal["sorted", "layout"] = "sorted"
    """Paper: the overall prompt lists the names sorted; "layout": in layout order."""
    object_seed_rule: Literal["identity", "index"] = "identity"
    """Paper: fg_seed_start + rank by name (one added box reseeds others); lmd: per identity."""
    scale_step_settings: bool = True
    """Paper: step indices are absolute (all 25 of 25 steps guided); lmd: scaled to `steps`."""
    stop_rule: Literal["recompute", "carried"] = "recompute"
    """Paper: checks the last update's carried loss (updates below it, then stops); lmd: fresh."""
    centre_half_cell: bool = True
    """Paper: the mask centre omits the half-cell term (shift rounds to the wrong grid step)."""
    frame0_paste: Literal["valid", "box"] = "valid"
    """Paper: frame 0 pastes the whole box around the mask, zeros a shift left included."""
    mask_resize: Literal["area", "bilinear"] = "area"
    """Paper: SAM masks go to the latent grid bilinearly (any value > 0); lmd: area >= 1/2."""
    sam_point: Literal["centre", "corner"] = "centre"
    """Paper: SAM's point is the attention peak cell's top-left corner; lmd: its centre."""
    plus_guidance_grounding: Literal["null", "conditional"] = "null"
    """LMD+. Paper: the guidance forward gets null grounding (masks 0); or the sampling one."""
    plus_overall_phrase: Literal["counted", "name"] = "counted"
    """LMD+. Paper: each box is grounded on its counted phrase ("two cats"); or its own name."""
    gligen_keep: Literal["largest", "first"] = "largest"
    """LMD+ past 30 boxes. Paper: grounds the first 30 in prompt order; lmd: the largest 30."""

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "cfg_scale": self.cfg_scale >= 0,
            "topk_ratio": 0 < self.topk_ratio <= 1,
            "frozen_ratio": 0 <= self.frozen_ratio <= 1,
            "guidance_iterations": len(self.guidance_iterations) > 0,
            "box_batch_size": self.box_batch_size is None or self.box_batch_size >= 1,
            "shift_grid": self.shift_grid >= 1,
            "center_bottom": 0 < self.center_bottom <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"`{name}` is out of range: {getattr(self, name)!r}")
        for name, choices in _choices().items():
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"`{name}` must be one of {', '.join(map(repr, choices))} "
                    f"but is {getattr(self, name)!r}"
                )
        object.__setattr__(self, "guidance_iterations", tuple(self.guidance_iterations))

    @classmethod
    def paper(cls, **overrides: Any) -> LMDConfig:
        """The paper's code exactly: every departure switched to its behaviour, flaws included."""
        return cls(**{**PAPER, **overrides})

    @classmethod
    def departures(cls) -> dict[str, tuple[Any, Any]]:
        """Each departure field: (the paper's value, lmd's default)."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        return {name: (value, defaults[name]) for name, value in PAPER.items()}

    def replace(self, **changes) -> LMDConfig:
        return dataclasses.replace(self, **changes)

    def per_box_view(self, method) -> LMDConfig:
        """This config with every setting the per-box generation of `method` (a name or a
        `Method`) ignores reset to its default: equal views (and equal methods) mean equal
        per-box results (the cache keys on both)."""
        from lmd.controller.methods import get_method

        guided = getattr(get_method(method).settings, "box_guidance", True)
        ignored = OVERALL_ONLY + (() if guided else GUIDANCE_ONLY)
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in ignored}
        return self.replace(**defaults)

    # Step-indexed settings, scaled from reference_steps to steps (or absolute).
    @property
    def _reference(self) -> int:
        return self.reference_steps if self.scale_step_settings else self.steps

    def _scaled(self, index: int) -> int:
        return round(index * self.steps / self._reference)

    @property
    def guidance_until(self) -> int:
        """Guidance runs for step index < this."""
        return min(self._scaled(self.guidance_steps), self.steps)

    @property
    def mask_attn_from(self) -> int:
        """The mask attention is averaged over step indices >= this (at least the last step)."""
        return min(self._scaled(self.mask_attn_start), self.steps - 1)

    @property
    def frozen_steps(self) -> int:
        return int(self.steps * self.frozen_ratio)

    def iterations(self, index: int) -> int:
        """Maximum guidance updates at step `index` (the schedule read at the scaled index)."""
        if index >= self.guidance_until:
            return 0
        ref = math.floor(index * self._reference / self.steps)
        return self.guidance_iterations[min(ref, len(self.guidance_iterations) - 1)]


@functools.cache
def _choices() -> dict[str, tuple[Any, ...]]:
    """The allowed values of each departure field (its `Literal` choices, or a bool's two)."""
    hints = typing.get_type_hints(LMDConfig)
    return {name: typing.get_args(hints[name]) or (False, True) for name in PAPER}

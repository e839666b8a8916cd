"""`LMDConfig`: every hyperparameter of stage 2, with the published defaults of LMD / LMD+.

Numbers are those of Lian et al. (TMLR 2024, arXiv 2305.13655) and its reference code for
50 DDIM steps. Step-indexed settings (guidance steps, the iteration schedule, the mask
attention window) are written for `reference_steps` = 50 and scale with `steps`, so a
25-step render guides the first 15 steps just as a 50-step render guides the first 30.

`LMDConfig` holds what every guided flow shares (sampling, the energy and its guidance
schedule, token rules, masks, the overall phase); a method's own settings (LMD's centring and
frame-0 paste, LMD+'s GLIGEN choices) live in the method (`methods/`), and runtime knobs (how
many boxes share a batch) are the controller's.

Where lmd computes something other than the paper's code, the choice is a named field below
(under "Departures") whose docstring says what the paper's code does; methods declare theirs
the same way. The defaults follow the paper's code except where lmd fixes a demonstrable flaw
(`tests/test_departures.py` shows each flaw); `LMDConfig.paper()` switches every departure to
the paper's behaviour, flaws included (its `paper_methods` flag does the same for the methods
a controller looks up by name: `Method.paper()`), and `tests/test_parity.py` pins it against
recorded runs of the paper's code.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

QUALITY_NEGATIVE = (
    "artifacts, blurry, smooth texture, bad quality, distortions, unrealistic, "
    "distorted image, bad proportions, duplicate"
)
PER_BOX_NEGATIVE = "two, many, group, occlusion, occluded, side, border, collate"
PUBLISHED_ITERATIONS = (4,) * 5 + (3,) * 5 + (2,) * 5 + (2,) * 5 + (1,) * 10

# What the paper's code (TonyLianLong/LLM-groundedDiffusion) does, for every departure field
# of `LMDConfig` (the methods' own are in their settings' `PAPER`).
PAPER: dict[str, Any] = {
    "energy_tokens": "phrase",
    "word_token": "last",
    "token_search": "first",
    "prompt_order": "sorted",
    "object_seed_rule": "index",
    "scale_step_settings": False,
    "stop_rule": "carried",
    "mask_resize": "bilinear",
    "sam_point": "corner",
    "guidance_step_rule": "sigmas",
}


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

    # The overall phase of box-drawing flows.
    frozen_ratio: float = 0.5  # first half of the overall steps keeps the composed latents

    # Masks.
    mask_attn_start: int = 10  # average the mask layer's attention over steps [start, steps)
    gaussian_sigma: float = 1.5
    coarse_threshold: float = 0.25
    sam_min_confidence: float = 0.85
    sam_min_coarse_iou: float = 0.25

    # Prompts.
    quality_negative: str = QUALITY_NEGATIVE
    per_box_negative: str = PER_BOX_NEGATIVE

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
    mask_resize: Literal["area", "bilinear"] = "area"
    """Paper: SAM masks go to the latent grid bilinearly (any value > 0); lmd: area >= 1/2."""
    sam_point: Literal["centre", "corner"] = "centre"
    """Paper: SAM's point is the attention peak cell's top-left corner; lmd: its centre."""
    guidance_step_rule: Literal["scaling", "sigmas"] = "scaling"
    """Paper: the update steps by sigma^2 whenever the scheduler has sigmas (DPM-Solver's, on
    unit-scale latents: ~200x too large at the start); lmd: sigma^2 on sigma-scaled latents."""
    paper_methods: bool = False
    """Set by `paper()`: a controller with this config runs the methods it looks up by name
    with their own paper settings too (`Method.paper()`)."""

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1,
            "cfg_scale": self.cfg_scale >= 0,
            "topk_ratio": 0 < self.topk_ratio <= 1,
            "frozen_ratio": 0 <= self.frozen_ratio <= 1,
            "guidance_iterations": len(self.guidance_iterations) > 0,
        }
        check_ranges(self, checks)
        check_choices(self, PAPER)
        object.__setattr__(self, "guidance_iterations", tuple(self.guidance_iterations))

    @classmethod
    def paper(cls, **overrides: Any) -> LMDConfig:
        """The paper's code exactly: every departure switched to its behaviour, flaws included."""
        return cls(**{**PAPER, "paper_methods": True, **overrides})

    @classmethod
    def departures(cls) -> dict[str, tuple[Any, Any]]:
        """Each departure field: (the paper's value, lmd's default)."""
        return departures(cls, PAPER)

    def replace(self, **changes) -> LMDConfig:
        return dataclasses.replace(self, **changes)

    def group(self, kind: type[G]) -> G:
        """The settings of group `kind` (a frozen dataclass whose fields are fields of this
        config), e.g. `config.group(Guidance)`."""
        return kind(**{f.name: getattr(self, f.name) for f in dataclasses.fields(kind)})

    @functools.cached_property
    def schedule(self) -> Schedule:
        return self.group(Schedule)

    @property
    def guidance_until(self) -> int:
        return self.schedule.guidance_until

    @property
    def mask_attn_from(self) -> int:
        return self.schedule.mask_attn_from

    def iterations(self, index: int) -> int:
        return self.schedule.iterations(index)

    @property
    def frozen_steps(self) -> int:
        return int(self.steps * self.frozen_ratio)


G = TypeVar("G")


@dataclass(frozen=True)
class Schedule:
    """Sampling and the step-indexed settings, scaled from `reference_steps` to `steps` (or
    absolute, the paper's code: `scale_step_settings` False)."""

    steps: int
    cfg_scale: float
    reference_steps: int
    scale_step_settings: bool
    guidance_steps: int
    guidance_iterations: tuple[int, ...]
    mask_attn_start: int

    @property
    def _reference(self) -> int:
        return self.reference_steps if self.scale_step_settings else self.steps

    def _scaled(self, index: int) -> int:
        """`index` of `reference_steps` at `steps`, to the nearest step (halves up)."""
        return math.floor(index * self.steps / self._reference + 0.5)

    @property
    def guidance_until(self) -> int:
        """Guidance runs for step index < this."""
        return min(self._scaled(self.guidance_steps), self.steps)

    @property
    def mask_attn_from(self) -> int:
        """The mask attention is averaged over step indices >= this (at least the last step)."""
        return min(self._scaled(self.mask_attn_start), self.steps - 1)

    def iterations(self, index: int) -> int:
        """Maximum guidance updates at step `index` (the schedule read at the scaled index)."""
        if index >= self.guidance_until:
            return 0
        ref = math.floor(index * self._reference / self.steps)
        return self.guidance_iterations[min(ref, len(self.guidance_iterations) - 1)]


@dataclass(frozen=True)
class Guidance:
    """What an energy-guided phase's guidance loop and energy read (Lian et al. 2024, Eq. 2, 3)."""

    fg_weight: float
    bg_weight: float
    topk_ratio: float
    loss_scale: float
    loss_threshold: float
    stop_rule: str
    guidance_step_rule: str


@dataclass(frozen=True)
class MaskSettings:
    """How an object's mask is made from its attention and SAM's answers."""

    gaussian_sigma: float
    coarse_threshold: float
    sam_min_confidence: float
    sam_min_coarse_iou: float
    mask_resize: str
    sam_point: str


def choices(cls: type, fields: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The allowed values of each named field of dataclass `cls` (its `Literal` choices, or a
    bool's two)."""
    return _choices(cls, tuple(fields))


@functools.cache
def _choices(cls: type, names: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    hints = typing.get_type_hints(cls)
    return {name: typing.get_args(hints[name]) or (False, True) for name in names}


def check_choices(settings: Any, paper: dict[str, Any]) -> None:
    """Raise `ValueError` naming the first departure field of `settings` whose value is not one
    of its choices."""
    for name, allowed in choices(type(settings), paper).items():
        if getattr(settings, name) not in allowed:
            raise ValueError(
                f"`{name}` must be one of {', '.join(map(repr, allowed))} "
                f"but is {getattr(settings, name)!r}"
            )


def check_ranges(settings: Any, checks: dict[str, bool]) -> None:
    """Raise `ValueError` naming the first field whose check is False."""
    for name, ok in checks.items():
        if not ok:
            raise ValueError(f"`{name}` is out of range: {getattr(settings, name)!r}")


def departures(cls: type, paper: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each departure field of dataclass `cls`: (the paper's value, lmd's default)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    return {name: (value, defaults[name]) for name, value in paper.items()}

"""`Method`: what a stage-2 method decides, with LMD's answers as the defaults.

A method says where each box is drawn for its own generation, how its noise is blended, whether
that generation is guided, what grounds the UNet (GLIGEN) in each phase, how SAM is prompted and
how a drawn object is moved into its box. The controller, the per-box and the overall phases ask
the method and never branch on its name. A new method is one module that subclasses `Method`
(or a built-in one) with its own frozen `settings`, plus one line in `methods/__init__.py`
(or a `register` call).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from lmd.controller.config import LMDConfig
from lmd.controller.masks import centring_offset, point_prompt
from lmd.controller.noise import Cells, centred


@dataclass(frozen=True)
class BoxSettings:
    """Settings every box-drawing method has (the paper's values for LMD)."""

    blend_ratio: float = 0.01  # r: inside a box, bg * sqrt(1 - r) + fg * sqrt(r)
    box_guidance: bool = True  # energy guidance in each box's own generation

    def __post_init__(self) -> None:
        if not 0 <= self.blend_ratio <= 1:
            raise ValueError(f"`blend_ratio` is out of range: {self.blend_ratio!r}")


@dataclass(frozen=True)
class Method:
    """A stage-2 method; `settings` are its own (a frozen dataclass), hashed into cache keys."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    grounded: ClassVar[bool] = True  # draws the boxes; False: plain SD from the overall prompt
    uses_sam: ClassVar[bool] = True
    gated_unet: ClassVar[bool] = False  # needs a GLIGEN UNet (`attention_type="gated"`)
    default_model: ClassVar[str | None] = None  # None: Stable Diffusion 1.5
    settings: Any = dataclasses.field(default_factory=BoxSettings)

    def with_settings(self, **changes: Any) -> Method:
        """This method with some of its settings changed."""
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, **changes))

    def check(self, pipe, family) -> None:
        """Raise `ValueError` (naming `method`) when this method cannot run on `pipe`."""

    # Per-box phase.
    def draw_at(self, cells: Cells, latent_hw: tuple[int, int], config: LMDConfig) -> Cells:
        """Where the object of box `cells` is drawn on its own: LMD centres it."""
        return centred(cells, latent_hw, config.center_bottom)

    def box_grounding(self, run, jobs):
        """GLIGEN inputs for the per-box batch (`conditioning.Grounding`), or None."""
        return None

    def sam_prompts(self, run, jobs, coarse, peaks, box_masks):
        """SAM's (points, boxes) prompts in image pixels and the masks SAM's answers are
        checked against: LMD points SAM at each object's attention peak, checked against its
        coarse attention mask."""
        (ih, iw), corner = run.image_hw, run.config.sam_point == "corner"
        points = [point_prompt(p, coarse.shape[-2:], (ih, iw), corner=corner) for p in peaks]
        return points, None, coarse

    # Composition and overall phase.
    def offset(self, mask, drawn: Cells, box: Cells, centre, latent_hw, config: LMDConfig):
        """(x, y) in latent cells moving the drawn object into `box`: LMD centres its mask on
        the box centre `centre` (latent cells)."""
        return centring_offset(mask, centre, config.centre_half_cell)

    def overall_grounding(self, run, objects, boxes):
        """GLIGEN inputs for the overall image, or None."""
        return None


def normalised(cells: Cells, latent_hw) -> tuple[float, float, float, float]:
    """`cells` as (x0, y0, x1, y1) fractions of the latent grid."""
    lh, lw = latent_hw
    return (cells.x / lw, cells.y / lh, (cells.x + cells.w) / lw, (cells.y + cells.h) / lh)

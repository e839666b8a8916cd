"""`Method`: a stage-2 method, the flow it runs and what it changes in each phase.

Every method chooses its flow (`flow`): one pass over the whole image ("one-pass": plain SD,
attention modulation, MIGC), LMD's per-box generation + composition + overall generation
("boxes"), or its own (an object with a `draw(drawing)` method; see `lmd.controller.flows`).
In any phase it may change the denoiser through `hooks(run, phase)` (attention processors,
per-step state, extra inputs; see `lmd.controller.phase`), load weights with the pipeline
(`load`), and refuse a pipeline it cannot run on (`check`). Its own settings are a frozen
dataclass (`settings`), so a method with its settings is hashable and keys caches.

`BoxMethod` adds what the "boxes" flow asks of a method (where each box is drawn on its own,
how SAM is prompted, how a drawn object is moved into its box), with LMD's answers.

A new method is one module with a `Method` subclass and its settings, registered by one line
in `methods/__init__.py`, a `register` call, or an entry point in the group `lmd.methods`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from lmd.controller.config import check_choices, departures
from lmd.controller.masks import centring_offset, point_prompt
from lmd.controller.noise import Cells, centred

OVERALL_ONLY = "overall_only"
"""Field metadata: a setting the per-box generation never reads (left out of its cache key)."""


def overall_only(default: Any) -> Any:
    """A settings field the per-box generation never reads."""
    return dataclasses.field(default=default, metadata={OVERALL_ONLY: True})


@dataclass(frozen=True)
class NoSettings:
    """A method without settings of its own."""

    PAPER: ClassVar[dict[str, Any]] = {}


@dataclass(frozen=True)
class Method:
    """A stage-2 method; `settings` are its own (a frozen dataclass), hashed into cache keys."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    flow: ClassVar[Any] = "one-pass"  # "one-pass", "boxes" or a flow object with `draw`
    uses_sam: ClassVar[bool] = False
    gated_unet: ClassVar[bool] = False  # needs a GLIGEN UNet (`attention_type="gated"`)
    default_model: ClassVar[str | None] = None  # None: Stable Diffusion 1.5
    settings: Any = dataclasses.field(default_factory=NoSettings)

    @property
    def grounded(self) -> bool:
        """Whether the method draws the layout's boxes (False: plain generation)."""
        return True

    def with_settings(self, **changes: Any) -> Method:
        """This method with some of its settings changed."""
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, **changes))

    def paper(self) -> Method:
        """This method as its authors' code computes it (each departure at the paper's value)."""
        return self.with_settings(**type(self.settings).PAPER) if self.departures() else self

    def departures(self) -> dict[str, tuple[Any, Any]]:
        """Each departure field of the settings: (the paper's value, lmd's default)."""
        return departures(type(self.settings), type(self.settings).PAPER)

    def check(self, pipe, backbone) -> None:
        """Raise `ValueError` (naming `method`) when this method cannot run on `pipe`."""
        self.check_family(backbone.name, backbone.label)

    def check_family(self, family: str, label: str) -> None:
        """Raise `ValueError` (naming `method`) when this method cannot run on a model of
        `family` (`sd1`, `sd2`, `sdxl`; `label` is how people call it); also asked before a
        model loads, when its files tell its family."""

    def load(self, pipe, backbone) -> None:
        """Load the weights this method needs into `pipe` (adapters); called once per pipe."""

    def hooks(self, run, phase):
        """What this method changes in `phase` (`lmd.controller.phase.Hooks`), or None."""
        return None


@dataclass(frozen=True)
class BoxSettings:
    """Settings every box-drawing method has (the paper's values for LMD)."""

    PAPER: ClassVar[dict[str, Any]] = {"centre_half_cell": False, "frame0_paste": "box"}

    blend_ratio: float = 0.01  # r: inside a box, bg * sqrt(1 - r) + fg * sqrt(r)
    box_guidance: bool = True  # energy guidance in each box's own generation
    centre_bottom: float = 0.8  # LMD draws each object centred, its bottom at 0.8 of the height
    shift_grid: int = overall_only(8)  # objects move in steps of 1/shift_grid of the image
    centre_half_cell: bool = overall_only(True)
    """Paper: the mask centre omits the half-cell term (shift rounds to the wrong grid step)."""
    frame0_paste: Literal["valid", "box"] = overall_only("valid")
    """Paper: frame 0 pastes the whole box around the mask, zeros a shift left included
    ("box"); lmd pastes only where the shifted latents are real ("valid")."""

    def __post_init__(self) -> None:
        if not 0 <= self.blend_ratio <= 1:
            raise ValueError(f"`blend_ratio` is out of range: {self.blend_ratio!r}")
        if self.shift_grid < 1:
            raise ValueError(f"`shift_grid` is out of range: {self.shift_grid!r}")
        if not 0 < self.centre_bottom <= 1:
            raise ValueError(f"`centre_bottom` is out of range: {self.centre_bottom!r}")
        check_choices(self, type(self).PAPER)


@dataclass(frozen=True)
class BoxMethod(Method):
    """A method on the "boxes" flow (LMD's): each object drawn on its own, masked, shifted into
    its box, composed, then the whole image; LMD's answers to each question."""

    flow: ClassVar[Any] = "boxes"
    uses_sam: ClassVar[bool] = True
    settings: BoxSettings = dataclasses.field(default_factory=BoxSettings)

    def per_box(self) -> BoxMethod:
        """This method with every setting the per-box generation never reads at its default:
        equal per-box views draw equal objects (the cache keys on it)."""
        fields = dataclasses.fields(self.settings)
        defaults = {f.name: f.default for f in fields if f.metadata.get(OVERALL_ONLY)}
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, **defaults))

    # Per-box phase.
    def draw_at(self, cells: Cells, latent_hw: tuple[int, int], config) -> Cells:
        """Where the object of box `cells` is drawn on its own: LMD centres it."""
        return centred(cells, latent_hw, self.settings.centre_bottom)

    def sam_prompts(self, run, jobs, coarse, peaks, box_masks, masks):
        """SAM's (points, boxes) prompts in image pixels and the masks SAM's answers are
        checked against (`masks`: the phase's `MaskSettings`): LMD points SAM at each
        object's attention peak, checked against its coarse attention mask."""
        (ih, iw), corner = run.image_hw, masks.sam_point == "corner"
        points = [point_prompt(p, coarse.shape[-2:], (ih, iw), corner=corner) for p in peaks]
        return points, None, coarse

    # Composition and overall phase.
    def offset(self, mask, drawn: Cells, box: Cells, centre, latent_hw, config):
        """(x, y) in latent cells moving the drawn object into `box`: LMD centres its mask on
        the box centre `centre` (latent cells)."""
        return centring_offset(mask, centre, self.settings.centre_half_cell)


def normalised(cells: Cells, latent_hw) -> tuple[float, float, float, float]:
    """`cells` as (x0, y0, x1, y1) fractions of the latent grid."""
    lh, lw = latent_hw
    return (cells.x / lw, cells.y / lh, (cells.x + cells.w) / lw, (cells.y + cells.h) / lh)

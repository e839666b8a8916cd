"""`RenderSettings`: which models draw a layout, and how, each setting declared once.

Each field carries its `Setting`: the flag and help the command line shows (`lmd.cli.options`
makes every render command's options from them), the label of the web page's Settings panel,
the rule a value must follow (checked without loading anything, the same words everywhere),
and whether it changes the picture (a batch folder keeps those fixed).

    RenderSettings(method="lmd+", steps=25).check()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lmd.controller.methods import Method

MAX_STEPS = 999
"""The most denoising steps: DDIM on Stable Diffusion's 1000-step schedule with
`steps_offset=1` (SD 1.x, 2.x and SDXL) would ask for timestep 1000 at 1000 steps."""
SIZE_MULTIPLE = 8
"""Image sizes are multiples of the VAE's downsampling, 8 for every SD 1.x, 2.x and SDXL VAE
(a loaded model checks its own)."""
PANEL = "Rendering (stage 2)"

Rule = Callable[[Any], "str | None"]
"""What is wrong with a value, as the rest of a sentence that names it ("must be a whole number
from 1 to 999 but is 0"), or None when it is fine. The library, the command line and the web
page put their own name for the setting in front."""


@dataclass(frozen=True)
class Setting:
    """What the command line, the web page and `lmd batch` know about one setting."""

    flag: str
    help: str | Callable[[], str]
    """The help text, or a function that makes it when shown (it may import the registry)."""
    metavar: str = ""
    """What the flag takes (`N`); empty for a flag that is on or off."""
    label: str = ""
    """The web page's name for it."""
    rule: Rule | None = None
    picture: bool = True
    """Whether it changes the picture (a batch folder refuses other values)."""
    negated: bool = False
    """A true/false setting whose flag turns it off (`--no-sam`)."""

    def describe(self) -> str:
        return self.help() if callable(self.help) else self.help

    def problem(self, value: Any) -> str | None:
        return self.rule(value) if self.rule is not None and value is not None else None


def whole_number(low: int, high: int) -> Rule:
    """A rule: an int from `low` to `high` (a bool is not a number here)."""

    def rule(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"must be a whole number from {low} to {high} but is {value!r}"

    return rule


def more_than(low: float) -> Rule:
    """A rule: a number above `low`."""

    def rule(value: Any) -> str | None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if number and value > low else f"must be more than {low} but is {value!r}"

    return rule


def _size(value: Any) -> str | None:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and value > 0 and value % SIZE_MULTIPLE == 0:
        return None
    return f"must be a positive multiple of {SIZE_MULTIPLE} but is {value!r}"


def raising(check: Callable[[Any], object]) -> Rule:
    """A rule from the library function that owns it, which raises `ValueError("`name` ...")`."""

    def rule(value: Any) -> str | None:
        try:
            check(value)
        except ValueError as e:
            text = str(e)  # without its subject: "must be ..."
            return text.split("` ", 1)[1] if text.startswith("`") and "` " in text else text
        return None

    return rule


def _method(value: Any) -> None:
    from lmd.controller.methods import get_method

    get_method(value)  # the registry owns the names


def _method_help() -> str:
    from lmd.controller.methods import get_method, method_names

    listed = ", ".join(get_method(name).summary or name for name in method_names())
    return f"How to draw: {listed}."


def _steps_help() -> str:
    from lmd.controller.config import LMDConfig

    return (
        f"Denoising steps, 1 to {MAX_STEPS} (default {LMDConfig().steps}; SD3 and FLUX.1 [dev]: "
        "28, FLUX.1 [schnell]: 4, as their pipelines)."
    )


def _device(value: Any) -> None:
    from lmd.models import resolve_device

    resolve_device(value)


def _dtype(value: Any) -> None:
    from lmd.models import resolve_dtype

    resolve_dtype(value, "cpu")


def _sam_backend(value: Any) -> None:
    from lmd.segment import sam_choice

    sam_choice(None, value)


def setting(default: Any, flag: str, help: str | Callable[[], str], **declared: Any) -> Any:
    """A `RenderSettings` field with its declaration."""
    return field(default=default, metadata={"setting": Setting(flag, help, **declared)})


@dataclass(frozen=True)
class RenderSettings:
    """Which models draw a layout, and how; `None` means the method's default.

    `sam_model` is a SAM hub id, a transformers SAM folder, a segment-anything `.pth` file,
    `vit_b`/`vit_l`/`vit_h` or `random:tiny` (default `facebook/sam-vit-base`; `random:tiny`
    for random models); `sam_backend` is `auto`, `transformers` or `segment-anything`.
    `refiner_model` (a hub id or folder) implies `refine`.
    """

    model: str | None = setting(
        None, "--model", "Hub id or local diffusers folder: SD 1.x, 2.x, SDXL, SD3/SD3.5 or "
        "FLUX.1 (default: SD 1.5, or GLIGEN for lmd+); random:tiny, random:sd15-tiny, "
        "random:sd15, random:sd2-tiny, random:sdxl-tiny, random:sdxl, random:sd3-tiny, "
        "random:sd3, random:flux-tiny or random:flux for random weights.", metavar="MODEL",
    )  # fmt: skip
    method: str = setting(
        "lmd", "--method", _method_help, metavar="METHOD", label="Method", rule=raising(_method)
    )
    steps: int | None = setting(
        None, "--steps", _steps_help, metavar="N", label="Steps",
        rule=whole_number(1, MAX_STEPS),
    )  # fmt: skip
    sam: bool = setting(
        True, "--no-sam", "Masks from attention only, without SAM.",
        label="Refine masks with SAM", negated=True,
    )  # fmt: skip
    sam_model: str | None = setting(
        None, "--sam", "SAM: a hub id (default facebook/sam-vit-base), a transformers SAM "
        "folder, a segment-anything .pth file, vit_b, vit_l, vit_h, or random:tiny.",
        metavar="SAM",
    )  # fmt: skip
    sam_backend: str = setting(
        "auto", "--sam-backend", "auto (a .pth file goes to segment-anything, anything else to "
        "transformers), transformers, or segment-anything (needs the segment-anything extra).",
        metavar="BACKEND", rule=raising(_sam_backend),
    )  # fmt: skip
    device: str | None = setting(
        None, "--device", "cuda, cuda:1, mps or cpu (default: the best there is).",
        metavar="DEVICE", rule=raising(_device), picture=False,
    )  # fmt: skip
    dtype: str | None = setting(
        None, "--dtype", "fp16, bf16 or fp32 (default: fp16 on CUDA, else fp32).",
        metavar="DTYPE", rule=raising(_dtype), picture=False,
    )  # fmt: skip
    height: int | None = setting(
        None, "--height", f"Image height in pixels, a multiple of {SIZE_MULTIPLE} (default: the "
        "model's).", metavar="PIXELS", rule=_size,
    )  # fmt: skip
    width: int | None = setting(
        None, "--width", f"Image width in pixels, a multiple of {SIZE_MULTIPLE} (default: the "
        "model's).", metavar="PIXELS", rule=_size,
    )  # fmt: skip
    refine: bool = setting(
        False, "--refine", "Finish with the SDXL refiner (img2img, strength 0.3)."
    )
    refiner_model: str | None = setting(
        None, "--refiner", "Refiner hub id or local folder (default "
        "stabilityai/stable-diffusion-xl-refiner-1.0); implies --refine.", metavar="MODEL",
    )  # fmt: skip
    migc_checkpoint: str | None = setting(
        None, "--migc-checkpoint", "MIGC's weights for --method migc (MIGC_SD14.ckpt) or migc++ "
        "(MIGC++_SD14.ckpt): a file, or a hub file as OWNER/REPO/FILE (non-commercial licence; "
        "see the README). Random models get random weights.", metavar="FILE",
    )  # fmt: skip
    paper: bool = setting(
        False, "--paper", "Compute what the paper's code computes (LMDConfig.paper()), its flaws "
        "included.",
    )  # fmt: skip

    def replace(self, **changes: Any) -> RenderSettings:
        return dataclasses.replace(self, **changes)

    @property
    def model_id(self) -> str:
        """The diffusion model that draws: `model`, else the method's published one."""
        from lmd.models import default_diffusion_model

        return self.model or default_diffusion_model(self.method)

    def drawing_method(self) -> Method:
        """The method that draws, with what these settings choose for it (MIGC's weights)."""
        from lmd.controller.methods import get_method
        from lmd.controller.methods.migc import MIGCMethod

        method = get_method(self.method)
        if isinstance(method, MIGCMethod):
            checkpoint = self.migc_checkpoint
            if checkpoint is None and self.model_id.startswith("random:"):
                checkpoint = "random"
            method = method.with_settings(checkpoint=checkpoint)
        return method

    @property
    def segments(self) -> bool:
        """Whether SAM refines the masks (`sam`, and a method that masks boxes)."""
        from lmd.controller.methods import get_method

        return self.sam and get_method(self.method).uses_sam

    @property
    def sam_spec(self) -> str | None:
        """The SAM model used, or None without SAM (no SAM download for random models)."""
        if not self.segments:
            return None
        if self.sam_model is None and self.model_id.startswith("random:"):
            return "random:tiny"
        return self.sam_model

    @property
    def refines(self) -> bool:
        return self.refine or self.refiner_model is not None

    def problems(self) -> dict[str, str]:
        """Each field whose value breaks its rule, and what is wrong (nothing is loaded)."""
        found = {}
        for name, declared in SETTINGS.items():
            if (problem := declared.problem(getattr(self, name))) is not None:
                found[name] = problem
        return found

    def check(self) -> RenderSettings:
        """Raise (naming the field) for anything wrong that shows before loading; return self.

        Checks every field's rule, then that each model can be found: random model names,
        local folders, and hub ids in the cache (or, online, on the hub). Settings that passed
        are not checked again (the CLI, `generate` and the loader each ask; the hub lookups are
        network requests).
        """
        _check_once(self)
        return self

    def _check(self) -> None:
        from lmd import models
        from lmd.segment import sam_choice

        for name, problem in self.problems().items():
            raise ValueError(f"`{name}` {problem}")
        models.check_source(self.model_id)
        models.check_model_fits(self.model_id, self.method)
        models.check_size_fits(self.model_id, self.height, self.width)
        self._check_migc()
        if self.segments:
            backend, source = sam_choice(self.sam_spec, self.sam_backend)
            if backend == "transformers" and not source.startswith("random:"):
                models.check_source(
                    source, what="SAM model", kind="transformers SAM", argument="sam_model",
                    required_file="config.json",
                )  # fmt: skip
        if self.refines:
            models.check_source(
                self.refiner_model or models.REFINER_MODEL, what="refiner model",
                argument="refiner_model",
            )  # fmt: skip

    def _check_migc(self) -> None:
        from lmd.controller.methods.migc import MIGCMethod, checkpoint_problem

        method = self.drawing_method()
        if not isinstance(method, MIGCMethod):
            return
        if method.settings.checkpoint is None:
            raise ValueError(
                f"`migc_checkpoint` is needed for method {self.method}: its weights file "
                f"({method.weights_file}); the README says where it comes from"
            )
        if (problem := checkpoint_problem(method.settings.checkpoint)) is not None:
            raise ValueError(f"`migc_checkpoint` {problem}")


SETTINGS: dict[str, Setting] = {
    f.name: f.metadata["setting"] for f in dataclasses.fields(RenderSettings)
}
"""Every render setting's declaration, by field name, in the order of the fields."""

PICTURE_SETTINGS = tuple(name for name, s in SETTINGS.items() if s.picture)
"""The settings that change the picture."""


@lru_cache(maxsize=64)
def _check_once(settings: RenderSettings) -> None:
    settings._check()  # raises; only settings that passed are remembered

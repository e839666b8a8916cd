"""Backbones: the base models lmd draws with, each behind the `Backbone` seam (see `base.py`).

    backbone = family_of(pipe)   # read off the components and configs, never the model's name

Adding a base model: a module with a `Backbone` subclass and a `detect(pipe)` function, and
one line in `DETECTORS` below.
"""

from __future__ import annotations

from lmd.controller.backbones import flux, sd3, unet
from lmd.controller.backbones.base import Backbone, HookedLayers, StepInputs, map_tensors

DETECTORS = [unet.detect, sd3.detect, flux.detect]
"""Each `detect(pipe)` returns the backbone class of a pipeline it knows, else None."""


def family_of(pipe) -> Backbone:
    """The backbone of a loaded pipeline, from its components and configs."""
    for detect in DETECTORS:
        kind = detect(pipe)
        if kind is not None:
            return kind(pipe)
    raise ValueError(
        f"lmd cannot draw with a {type(pipe).__name__}: it knows Stable Diffusion 1.x, 2.x, "
        "SDXL, SD3 and FLUX.1 pipelines"
    )


__all__ = ["DETECTORS", "Backbone", "HookedLayers", "StepInputs", "family_of", "map_tensors"]

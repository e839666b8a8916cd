"""`RenderResult`: what drawing one layout gives back (the controller's and a story's rows)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from lmd.controller.engine import Counts
from lmd.layouts.model import Layout


@dataclass
class RenderResult:
    image: Image.Image
    layout: Layout  # scaled to the image
    box_images: list[Image.Image]  # each object drawn on its own, in layout order
    masks: list[torch.Tensor]  # each object's mask on the latent grid, in place (bool)
    generated: int  # per-box generations run for this image
    reused: int  # per-box results taken from the cache
    seconds: float
    object_seeds: list[int] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

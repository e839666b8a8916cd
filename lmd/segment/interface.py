"""The SAM interface both backends implement: images and one prompt each -> 3 masks and scores.

The lowest SAM module: the backends (`transformers_sam`, `meta_sam`) import it, and the package
itself (`lmd.segment`, which picks a backend) imports them; nothing here imports a backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from PIL import Image

PointPrompt = tuple[float, float]
BoxPrompt = tuple[float, float, float, float]
Images = Sequence[Image.Image]
Points = Sequence[PointPrompt] | None
Boxes = Sequence[BoxPrompt] | None
Size = tuple[int, int]
"""(height, width) in pixels."""
Masks = tuple[torch.Tensor, torch.Tensor]
"""masks bool `[B, 3, H, W]` and SAM's predicted IoU float32 `[B, 3]`."""

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
"""The three published SAM sizes; each backend maps them to its own weights."""


class Segmenter(Protocol):
    """Segment each image from one point or one box (pixel coordinates, boxes xyxy).

    Returns `(masks, scores)`: masks bool `[B, 3, H, W]` at the images' size and SAM's
    predicted IoU as float32 `[B, 3]`, on the segmenter's device. Exactly one of `points`
    and `boxes` is given, one per image; all images go through the image encoder as one batch.
    """

    backend: str

    def segment(self, images: Images, *, points: Points = None, boxes: Boxes = None) -> Masks: ...


class ModelSegmenter:
    """What both backends share: a SAM model in eval mode on its device, and a `segment` that
    checks its call before `_segment(images, points, boxes, (height, width))` runs it."""

    backend: str

    def __init__(self, model: Any):
        self.model = model.eval()

    @property
    def device(self) -> torch.device:
        return self.model.device

    @torch.no_grad()
    def segment(self, images: Images, *, points: Points = None, boxes: Boxes = None) -> Masks:
        size = check_prompts(images, points, boxes)
        return self._segment(images, points, boxes, size)

    def _segment(self, images: Images, points: Points, boxes: Boxes, size: Size) -> Masks:
        raise NotImplementedError


def check_prompts(
    images: Sequence[Image.Image],
    points: Sequence[PointPrompt] | None,
    boxes: Sequence[BoxPrompt] | None,
) -> tuple[int, int]:
    """Validate a `segment` call; return the images' common `(height, width)`."""
    if not images:
        raise ValueError("`images` must hold at least one image but is empty")
    if (points is None) == (boxes is None):
        raise ValueError("pass exactly one of `points` and `boxes` (one prompt per image)")
    prompts = points if points is not None else boxes
    name, width = ("points", 2) if points is not None else ("boxes", 4)
    if len(prompts) != len(images):
        raise ValueError(
            f"`{name}` must hold one prompt per image: {len(prompts)} for {len(images)} images"
        )
    if any(len(p) != width for p in prompts):
        raise ValueError(f"each of `{name}` must have {width} numbers but got {list(prompts)}")
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise ValueError(f"all `images` must have the same size but have {sorted(sizes)}")
    width_px, height_px = sizes.pop()
    return height_px, width_px

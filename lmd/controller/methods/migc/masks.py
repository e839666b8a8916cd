"""MIGC's instance and background masks, built from boxes the way the authors' pipeline builds
them (limuloo/MIGC at effd6cc, `migc/migc_pipeline.py:194-213`, "pipeline.py:N" below):

- each box is painted at full image resolution, rows int(H * y0) .. int(H * y1) - 1 and
  columns int(W * x0) .. int(W * x1) - 1 set to 1 (pipeline.py:195-200);
- the background is 1 - min(1, sum of the box masks), at the same resolution
  (pipeline.py:75-81, 205);
- both are resized to the latent grid (image / 8) with bilinear interpolation (no antialias,
  `align_corners=False`), so border cells hold fractions (pipeline.py:207, 213), and again to
  each MIGC layer's grid the same way (migc_arch.py:146, 150).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def box_masks(
    boxes: Sequence[Sequence[float]],
    image_hw: tuple[int, int],
    latent_hw: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Instance masks [N, h, w] and the background mask [1, h, w] on the latent grid, for
    `boxes` as (x0, y0, x1, y1) fractions of an image of `image_hw` pixels."""
    height, width = image_hw
    if not boxes:
        return torch.zeros(0, *latent_hw), torch.ones(1, *latent_hw)
    full = torch.zeros(len(boxes), height, width)
    for mask, (x0, y0, x1, y1) in zip(full, boxes, strict=True):
        mask[int(height * y0) : int(height * y1), int(width * x0) : int(width * x1)] = 1.0
    background = 1 - full.sum(dim=0, keepdim=True).clamp(max=1)
    return resize(full, latent_hw), resize(background, latent_hw)


def resize(masks: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """[K, h, w] -> [K, *hw], bilinear as the authors resize (unchanged when the size is)."""
    if tuple(masks.shape[-2:]) == tuple(hw):
        return masks
    return F.interpolate(masks[None], size=hw, mode="bilinear")[0]

"""Seeds, initial noise and box geometry on the latent grid.

One background seed (the render seed) and one seed per object, derived from the render
seed, the object's name and which same-named box it is, so an object keeps its seed when
other boxes are added, removed or reordered. Noise is drawn on the CPU in float32 so a seed
gives the same latents on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmd.layouts.seeds import object_seeds as object_seeds  # the seed rules live there


@dataclass(frozen=True)
class Cells:
    """A box on the latent grid, in whole cells: top-left (x, y) and size (w, h)."""

    x: int
    y: int
    w: int
    h: int

    def mask(self, height: int, width: int, device=None) -> torch.Tensor:
        m = torch.zeros(height, width, dtype=torch.bool, device=device)
        m[max(self.y, 0) : self.y + self.h, max(self.x, 0) : self.x + self.w] = True
        return m


def gaussian(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise from a CPU generator seeded with `seed` (the same numbers on every
    device, as diffusers' `randn_tensor` draws them); moved to the model's device by the caller."""
    from diffusers.utils.torch_utils import randn_tensor

    generator = torch.Generator("cpu").manual_seed(seed)
    return randn_tensor(shape, generator=generator, dtype=torch.float32)


def blend(bg: torch.Tensor, fg: torch.Tensor, box: torch.Tensor, ratio: float) -> torch.Tensor:
    """Inside `box`: bg*sqrt(1-r) + fg*sqrt(r); outside: bg (Lian et al. 2024, Sec. 3.2)."""
    inside = bg * (1 - ratio) ** 0.5 + fg * ratio**0.5
    return torch.where(box, inside, bg)


def to_cells(xyxy: tuple[float, float, float, float], image_hw, latent_hw) -> Cells:
    """A pixel box on the latent grid: position and size rounded separately, at least 1 cell."""
    (ih, iw), (lh, lw) = image_hw, latent_hw
    x0, y0, x1, y1 = xyxy
    w = max(1, round((x1 - x0) * lw / iw))
    h = max(1, round((y1 - y0) * lh / ih))
    x = min(max(round(x0 * lw / iw), 0), lw - w)
    y = min(max(round(y0 * lh / ih), 0), lh - h)
    return Cells(x, y, min(w, lw), min(h, lh))


def centred(size: Cells, latent_hw, bottom: float) -> Cells:
    """LMD's per-box placement: horizontally centred, the bottom at `bottom` of the height."""
    lh, lw = latent_hw
    x = (lw - size.w) // 2
    y = max(round(bottom * lh) - size.h, 0)
    return Cells(x, y, size.w, size.h)


def layout_seeds(seed: int, layout, explicit, cfg) -> list[int]:
    """Each box's seed of `layout` (an `LMDConfig` `cfg` says the rule); `explicit` seeds win."""
    return object_seeds(
        seed, layout.names, list(explicit) if explicit is not None else None,
        by_index=cfg.object_seed_rule == "index", start=cfg.fg_seed_start,
    )  # fmt: skip

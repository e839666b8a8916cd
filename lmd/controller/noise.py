"""Seeds, initial noise and box geometry on the latent grid.

One background seed (the render seed) and one seed per object, derived from the render
seed, the object's name and which same-named box it is, so an object keeps its seed when
other boxes are added, removed or reordered. Noise is drawn on the CPU in float32 so a seed
gives the same latents on every device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


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


def object_seed(seed: int, name: str, occurrence: int) -> int:
    """A 63-bit seed for the `occurrence`-th box called `name` in a render seeded `seed`."""
    digest = hashlib.sha256(f"{seed}\x00{name}\x00{occurrence}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def object_seeds(
    seed: int,
    names: list[str],
    explicit: list[int | None] | None,
    *,
    by_index: bool = False,
    start: int = 20,
) -> list[int]:
    """Each box's seed: the caller's where given, else derived from the name and occurrence.

    `by_index` is the paper's rule: the k-th box in name order gets `start + k` (plus 12345
    where that equals the background seed), so adding a box reseeds every box after it.
    """
    if explicit is not None and len(explicit) != len(names):
        raise ValueError(
            f"`object_seeds` has {len(explicit)} entries but the layout has {len(names)} boxes"
        )
    rank = {i: k for k, i in enumerate(sorted(range(len(names)), key=lambda i: names[i]))}
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        k = seen.get(name, 0)
        seen[name] = k + 1
        given = explicit[i] if explicit is not None else None
        if given is not None:
            out.append(int(given))
        elif by_index:
            derived = start + rank[i]
            out.append(derived + 12345 if derived == seed else derived)
        else:
            out.append(object_seed(seed, name, k))
    return out


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

"""Subject masks for shared attention: from the layout (LMD's object masks, else the boxes) or
from the subject tokens' cross-attention thresholded with Otsu's method; resized to each
attention layer's grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmd.controller.phase import PhaseObject


def otsu(values: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold (Otsu 1979) of each row of `values` [N, P]: the value t maximising the
    between-class variance w0 w1 (m0 - m1)^2 of {x <= t} and {x > t}; returns [N]. A constant
    row gets its value (nothing lies above it)."""
    x, _ = values.double().sort(dim=-1)
    p = x.shape[-1]
    count = torch.arange(1, p + 1, dtype=x.dtype, device=x.device)
    below = x.cumsum(-1)
    total = below[..., -1:]
    w0 = count / p
    m0 = below / count
    m1 = (total - below) / (p - count).clamp(min=1)
    between = w0 * (1 - w0) * (m0 - m1) ** 2
    between[..., -1] = -1  # a split must leave something above it
    split = between.argmax(-1, keepdim=True)
    return x.gather(-1, split).squeeze(-1).to(values.dtype)


def otsu_masks(maps: torch.Tensor) -> torch.Tensor:
    """[N, h, w] attention maps -> [N, h, w] bool: above each map's Otsu threshold."""
    flat = maps.flatten(1)
    return (flat > otsu(flat)[:, None]).reshape(maps.shape)


def resize_bool(masks: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bool masks [N, h, w] on another grid: a coarser cell is in when any finer cell is (a
    small object keeps at least one patch), a finer cell takes its coarse cell's value."""
    if tuple(masks.shape[-2:]) == tuple(hw):
        return masks
    x = masks[:, None].float()
    if hw[0] <= masks.shape[-2] and hw[1] <= masks.shape[-1]:
        out = F.adaptive_max_pool2d(x, hw)
    else:
        out = F.interpolate(x, size=hw, mode="nearest")
    return out[:, 0] > 0


def layout_mask(objects: list[PhaseObject], latent_hw: tuple[int, int]) -> torch.Tensor:
    """The union of `objects`' masks in place (where the flow has one) or boxes, [h, w]."""
    out = torch.zeros(latent_hw, dtype=torch.bool)
    for o in objects:
        out |= o.mask.cpu().bool() if o.mask is not None else o.cells.mask(*latent_hw)
    return out


def subject_tokens(objects: list[PhaseObject]) -> list[int]:
    """The prompt positions of the subjects' head nouns (their whole phrase when the head was
    not located); empty when their tokens were not located."""
    positions: list[int] = []
    for o in objects:
        if o.tokens is None:
            continue
        chosen = [o.tokens.word] if o.tokens.word is not None else list(o.tokens.guided)
        positions += [t for t in chosen if t not in positions]
    return positions

"""Shift per-box results to their boxes and compose their latents (Lian et al. 2024, Sec. 3.2).

Composition paints larger masks first and smaller ones on top. Frame 0 is the background
noise with each object's initial noise pasted over the bounding box of its mask (only where
the shifted latents are real, unless `valid` is None, the paper's code: zeros too); every
later frame holds each object's latents inside its mask (zeros elsewhere, never read: the
overall generation only copies frames inside the union of the masks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate the last two dims by (dx, dy) whole cells; uncovered cells become zero."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y, dst_y = (
        (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    )
    src_x, dst_x = (
        (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    )
    out[..., dst_y, dst_x] = x[..., src_y, src_x]
    return out


def shift_flat(x: torch.Tensor, dx: int, dy: int, hw: tuple[int, int]) -> torch.Tensor:
    """`shift` for maps flattened to [..., h*w]."""
    return shift(x.unflatten(-1, hw), dx, dy).flatten(-2)


def bounding_box_mask(mask: torch.Tensor, margin: int = 1) -> torch.Tensor:
    """The mask's bounding box grown by `margin` cells, as a mask."""
    out = torch.zeros_like(mask)
    if not mask.any():
        return out
    ys, xs = torch.nonzero(mask, as_tuple=True)
    h, w = mask.shape
    y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, h)
    x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, w)
    out[y0:y1, x0:x1] = True
    return out


@dataclass
class Composed:
    frames: torch.Tensor  # [steps + 1, C, h, w]
    union: torch.Tensor  # [h, w] bool: cells any object covers


def compose(
    background: torch.Tensor,
    frames: list[torch.Tensor],
    masks: list[torch.Tensor],
    valid: list[torch.Tensor] | None,
) -> Composed:
    """Compose per-object latent frames [S+1, C, h, w] inside their masks [h, w].

    `valid[i]` marks the cells where object i's shifted frames hold real latents (not the
    zeros a shift leaves), so frame 0 never pastes zeros. `valid=None` pastes the whole
    grown bounding box, zeros included, as the paper's code does.
    """
    steps = frames[0].shape[0] if frames else 1
    out = torch.zeros((steps, *background.shape), dtype=background.dtype)
    out[0] = background
    union = torch.zeros(background.shape[-2:], dtype=torch.bool)
    order = sorted(range(len(masks)), key=lambda i: -int(masks[i].sum()))
    for i in order:
        paste = bounding_box_mask(masks[i])
        if valid is not None:
            paste = paste & valid[i]
        out[0] = torch.where(paste, frames[i][0], out[0])
    for i in order:
        out = torch.where(masks[i], frames[i], out)
        union |= masks[i]
    return Composed(out, union)

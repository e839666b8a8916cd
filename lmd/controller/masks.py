"""Object masks: from the mask layer's attention, refined by SAM, with safe fallbacks.

Coarse mask: the object token's attention on the mask layer averaged over steps and heads,
Gaussian-smoothed, min-max normalised and thresholded. SAM gets the smoothed argmax as a
point prompt (LMD) or the box (LMD+) on each decoded per-box image, all in one batch; of its
3 masks the one with the best `size - max_size*[conf < c] - max_size*[IoU(coarse) < i]`
wins. Without SAM the coarse mask is used; an empty mask becomes the box.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lmd.controller.noise import Cells


def cells_mask_at(cells: Cells, latent_hw, res_hw, device=None) -> torch.Tensor:
    """A latent-grid box as a mask at another resolution (at least one cell)."""
    (lh, lw), (rh, rw) = latent_hw, res_hw
    w = max(1, round(cells.w * rw / lw))
    h = max(1, round(cells.h * rh / lh))
    x, y = round(cells.x * rw / lw), round(cells.y * rh / lh)
    return Cells(x, y, w, h).mask(rh, rw, device=device)


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Gaussian filter over the last two dims, as `scipy.ndimage.gaussian_filter` (reflect)."""
    if sigma <= 0:
        return x
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype).to(x.device)
    for dim in (-1, -2):
        n = x.shape[dim]
        idx = torch.arange(-radius, n + radius) % (2 * n)
        idx = torch.where(idx >= n, 2 * n - 1 - idx, idx).to(x.device)
        padded = x.index_select(dim if dim >= 0 else x.ndim + dim, idx)
        windows = padded.unfold(x.ndim + dim, 2 * radius + 1, 1)
        x = (windows * kernel).sum(-1)
    return x


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of [N, h, w] to [0, 1] (a flat map becomes 0)."""
    flat = x.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    span = (hi - lo).clamp(min=torch.finfo(x.dtype).tiny)
    return (x - lo[:, None, None]) / span[:, None, None]


def coarse_masks(attn: torch.Tensor, sigma: float, threshold: float):
    """Smoothed attention [N, h, w] -> (coarse bool masks, argmax (row, col) per map)."""
    smooth = gaussian_blur(attn.double(), sigma)  # float64, as scipy's filter
    peak = smooth.flatten(1).argmax(1)
    rows, cols = peak // smooth.shape[-1], peak % smooth.shape[-1]
    return normalise(smooth) > threshold, list(zip(rows.tolist(), cols.tolist(), strict=True))


def resize_masks(masks: torch.Tensor, hw, mode: str = "area") -> torch.Tensor:
    """Bool masks [..., H, W] to `hw`: by area coverage >= 1/2 ("area"), or as the paper's code
    does, bilinear interpolation where any value above zero is kept ("bilinear")."""
    lead = masks.shape[:-2]
    flat = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    if mode == "bilinear":
        out = F.interpolate(flat, size=tuple(hw), mode="bilinear") > 0
    else:
        out = F.interpolate(flat, size=tuple(hw), mode="area") >= 0.5
    return out.reshape(*lead, *hw)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of masks `a` [..., h, w] with `b` (broadcast)."""
    inter = (a & b).flatten(-2).sum(-1).float()
    union = (a | b).flatten(-2).sum(-1).float()
    return inter / union.clamp(min=1)


def select_mask(
    masks: torch.Tensor, scores: torch.Tensor, ious: torch.Tensor, min_conf: float, min_iou: float
) -> int:
    """Index of the largest of SAM's masks, discouraging low confidence and low IoU."""
    sizes = masks.flatten(1).sum(1).float()
    big = sizes.max()
    rank = sizes - big * (scores < min_conf).float() - big * (ious < min_iou).float()
    return int(rank.argmax())


def refine_with_sam(
    segmenter,
    images,
    coarse: torch.Tensor,
    *,
    points: list[tuple[float, float]] | None,
    boxes: list[tuple[float, float, float, float]] | None,
    latent_hw,
    min_conf: float,
    min_iou: float,
    resize: str = "area",
) -> torch.Tensor:
    """SAM masks for all images in one call, selected against `coarse` [N, h, w]; -> latent.

    `resize` "bilinear" is the paper's: masks go to the latent grid bilinearly and from there
    to the coarse mask's size for the IoU; "area" takes each size from SAM's own masks.
    """
    sam_masks, sam_scores = segmenter.segment(images, points=points, boxes=boxes)
    sam_masks, sam_scores = sam_masks.cpu().bool(), sam_scores.cpu().float()
    coarse = coarse.cpu()
    out = []
    for masks, scores, ref in zip(sam_masks, sam_scores, coarse, strict=True):
        at_latent = resize_masks(masks, latent_hw, resize)
        source = at_latent if resize == "bilinear" else masks
        ious = iou(resize_masks(source, ref.shape, resize), ref[None])
        out.append(at_latent[select_mask(at_latent, scores, ious, min_conf, min_iou)])
    return torch.stack(out)


def point_prompt(peak: tuple[int, int], attn_hw, image_hw, corner: bool = False):
    """The centre (or, as the paper's code, the top-left corner) of an attention cell, in
    image pixels (x, y)."""
    (row, col), (ah, aw), (ih, iw) = peak, attn_hw, image_hw
    half = 0.0 if corner else 0.5
    return ((col + half) * iw / aw, (row + half) * ih / ah)


def or_box(mask: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """`mask`, or `box` where the mask is empty: an object never disappears."""
    return mask if bool(mask.any()) else box


def centre_of_mass(mask: torch.Tensor) -> tuple[float, float]:
    """(x, y) centre of a 2-D mask, in cells (cell centres at integer coordinates)."""
    m = mask.float()
    total = m.sum()
    if total == 0:
        h, w = mask.shape
        return ((w - 1) / 2, (h - 1) / 2)
    ys = torch.arange(mask.shape[0], dtype=torch.float32)
    xs = torch.arange(mask.shape[1], dtype=torch.float32)
    return (float((m.sum(0) * xs).sum() / total), float((m.sum(1) * ys).sum() / total))


def centring_offset(
    mask: torch.Tensor, target: tuple[float, float], half_cell: bool = True
) -> tuple[float, float]:
    """(x, y) in cells that moves `mask`'s centre onto `target` (in cells, continuous).

    Cell i covers [i, i + 1), so a mask's centre is its mean index plus half a cell; the
    paper's code leaves the half cell out (`half_cell=False`), so its masks land half a cell
    down and right of where it aims before the shift is rounded to the grid.
    """
    mx, my = centre_of_mass(mask)
    half = 0.5 if half_cell else 0.0
    return target[0] - (mx + half), target[1] - (my + half)


def shift_unit(latent_size: int, coarsest: int, grid: int) -> int:
    """Shift step in latent cells: 1/grid of the image, a whole cell at every attention size."""
    cell = math.ceil(latent_size / coarsest)
    return max(cell, round(latent_size / grid / cell) * cell)

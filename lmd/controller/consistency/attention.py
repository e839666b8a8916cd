"""The tensor operations of shared attention, as pure functions (formulas in `settings.py`):
the extended keys and their mask (SDSA), exact-fraction dropout of the shared entries, and
feature injection from the nearest anchor patch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shared_keys(
    hidden: torch.Tensor,
    halves: list[list[int]],
    sources: list[list[int]],
    masks: torch.Tensor,
    dropped: list[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each batch row's extended key input and additive key mask (SDSA).

    `hidden` [B, P, C] is the layer's input; `halves[h][k]` is the batch row of image k in
    half h (unconditional, conditional); `sources[k]` are the images image k also attends to,
    inside their `masks` [N, P] (bool). Row r of image k gets keys [own P ; P of each source,
    in order], padded to the longest with masked zeros, and a bias [B, 1, L] that is 0 where
    it may attend and -inf elsewhere. `dropped[k]` [len(sources[k]) * P] (bool) marks shared
    entries dropped for image k (None: none), the same in both halves.
    """
    rows, p, c = hidden.shape
    length = p * (1 + max((len(s) for s in sources), default=0))
    keys = hidden.new_zeros(rows, length, c)
    bias = hidden.new_full((rows, 1, length), float("-inf"))
    for half in halves:
        for k, row in enumerate(half):
            parts = [hidden[row]] + [hidden[half[a]] for a in sources[k]]
            own = torch.cat(parts)
            keys[row, : own.shape[0]] = own
            allowed = torch.cat([masks.new_ones(p), *(masks[a] for a in sources[k])])
            if dropped is not None and dropped[k] is not None:
                allowed[p:] &= ~dropped[k].to(allowed.device)
            bias[row, 0, : own.shape[0]] = torch.where(allowed, 0.0, float("-inf"))
    return keys, bias


def drop_exact(shared: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Of each row's True entries of `shared` [R, L], exactly round(fraction * count) chosen at
    random with `generator` (on the CPU); returns them as a bool mask [R, L]."""
    shared = shared.cpu()
    keys = torch.rand(shared.shape, generator=generator).masked_fill(~shared, 2.0)
    rank = keys.argsort(-1).argsort(-1)
    count = (shared.sum(-1).double() * fraction).round().long()
    return shared & (rank < count[:, None])


def inject(
    out: torch.Tensor,
    features: torch.Tensor,
    mask: torch.Tensor,
    anchor_out: torch.Tensor,
    anchor_features: torch.Tensor,
    weight: float,
    max_distance: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature injection into one image: its output `out` [P, C] inside `mask` [P] mixed with
    the output `anchor_out` [Q, C] of the anchor patch nearest by cosine distance of the
    denoising `features` [P, D] to `anchor_features` [Q, D], where that distance is below
    `max_distance`: O[p] <- (1 - w) O[p] + w O_a[q]. Returns (the new output, the patches
    written [P] bool)."""
    written = torch.zeros_like(mask)
    if not bool(mask.any()) or anchor_out.shape[0] == 0:
        return out, written
    where = mask.nonzero().squeeze(-1)
    a = F.normalize(features[where].float(), dim=-1)
    b = F.normalize(anchor_features.float(), dim=-1)
    similarity, nearest = (a @ b.T).max(-1)
    close = (1 - similarity) < max_distance
    patches = where[close]
    mixed = out.clone()
    mixed[patches] = (1 - weight) * out[patches] + weight * anchor_out[nearest[close]]
    written[patches] = True
    return mixed, written

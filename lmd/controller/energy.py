"""The cross-attention energy of LMD and its latent update, as small pure functions.

Shapes: `attn` is one layer's captured attention [B, heads, P, C] (P pixels, C captured
token columns); an object's tokens are picked from those columns with `cols` [B, O, T] and
averaged with `weights` [B, O, T] (rows summing to 1; zero for padding). Box masks are
[B, O, P] in {0, 1} at the layer's resolution.
"""

from __future__ import annotations

import torch


def topk_mean(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mean of the `k` largest values along the last dim; `k` (>= 1) may differ per row."""
    k = k.clamp(min=1, max=x.shape[-1])
    top = x.sort(dim=-1, descending=True).values.cumsum(dim=-1)
    return top.gather(-1, (k - 1).unsqueeze(-1)).squeeze(-1) / k.to(x.dtype)


def box_energy(
    attn: torch.Tensor,
    masks: torch.Tensor,
    cols: torch.Tensor,
    weights: torch.Tensor,
    *,
    fg_weight: float,
    bg_weight: float,
    topk_ratio: float,
) -> torch.Tensor:
    """Eq. 2 of Lian et al. (2024) for one layer: per object, summed over heads, token-averaged.

    `fg_w*(1 - topk_mean(A*b, r|b|)) + bg_w*topk_mean(A*(1-b), r|1-b|)`; returns [B, O].
    """
    b, heads, pixels, _ = attn.shape
    o, t = cols.shape[1:]
    index = cols.reshape(b, 1, 1, o * t).expand(b, heads, pixels, o * t)
    a = attn.gather(-1, index).reshape(b, heads, pixels, o, t).permute(0, 3, 4, 1, 2)
    masks = masks.to(a.dtype)
    m = masks[:, :, None, None, :]  # [B, O, 1, 1, P]
    k_fg = (masks.sum(-1) * topk_ratio).long()[:, :, None, None].expand(b, o, t, heads)
    k_bg = ((1 - masks).sum(-1) * topk_ratio).long()[:, :, None, None].expand(b, o, t, heads)
    fg = 1 - topk_mean(a * m, k_fg)
    bg = topk_mean(a * (1 - m), k_bg)
    per_token = (fg_weight * fg + bg_weight * bg).sum(-1)  # [B, O, T], summed over heads
    return (per_token * weights).sum(-1)


def total_energy(per_layer: list[torch.Tensor], extra: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Sum over layers and objects, divided by objects x layers (Lian et al. 2024, Eq. 2).

    `per_layer` holds [B, O] energies; `extra` (e.g. attention transfer, already summed over
    objects and layers) shares the same normalisation. Returns [B].
    """
    layers, objects = len(per_layer), per_layer[0].shape[-1]
    return (torch.stack(per_layer).sum(0).sum(-1) + extra) / (objects * layers)


def transfer_loss(
    attn: torch.Tensor, ref: torch.Tensor, masks: torch.Tensor, eps: float
) -> torch.Tensor:
    """Attention transfer of LMD (Sec. 3.3): L1 between box-masked, sum-normalised maps.

    `attn` and `ref` [J, heads, P] (one token each), `masks` [J, P]; returns [J], summed over
    pixels and averaged over heads.
    """
    m = masks.to(attn.dtype)[:, None, :]
    a = attn * m
    r = ref.to(attn.dtype) * m
    a = a / (a.sum(-1, keepdim=True) + eps)
    r = r / (r.sum(-1, keepdim=True) + eps)
    return (a - r).abs().sum(-1).mean(-1)


def noise_level(scheduler, index: int, t, rule: str = "scaling") -> float:
    """Step size of the energy update at step `index` (timestep `t`) of a diffusion scheduler.

    Classifier guidance (Dhariwal & Nichol 2021, Eq. 14) scaled as in the LMD code: a
    scheduler whose latents carry the noise scale (`init_noise_sigma` > 1: Euler, LMS, EDM;
    x = x0 + sigma * eps) steps by sigma_index^2; one whose latents have unit scale (DDIM,
    DDPM, DPM-Solver, UniPC, DEIS, LCM; x = sqrt(a) x0 + sqrt(1 - a) eps) by
    sqrt(1 - alpha_bar_t). `rule` "sigmas" is the paper's code: sigma^2 whenever the scheduler
    has `sigmas`, which DPM-Solver, UniPC and DEIS have too, on unit-scale latents.
    """
    sigmas = getattr(scheduler, "sigmas", None)
    scaled = float(getattr(scheduler, "init_noise_sigma", 1.0)) > 1.0
    if sigmas is not None and (scaled or rule == "sigmas"):
        return float(sigmas[index]) ** 2
    alpha_bar = scheduler.alphas_cumprod[int(t)]
    return float((1 - alpha_bar) ** 0.5)


def guidance_update(latents: torch.Tensor, grad: torch.Tensor, step: float) -> torch.Tensor:
    """z <- z - grad(loss_scale * E) * step (Lian et al. 2024, Eq. 3)."""
    return latents - grad * step

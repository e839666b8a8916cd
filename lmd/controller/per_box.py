"""Per-box generation: every object drawn on its own, all boxes in one batch (CFG batch 2N).

Each row of the batch is one object with its own prompt, initial noise and box; rows never
interact (the UNet treats batch rows independently), so the batch gives what box-by-box
generation gives, in one UNet call per step. Saved per object: the latents after every step,
the word token's attention on the guidance layers for the guided steps (attention transfer)
and its mean attention on the mask layer (masks), and the decoded image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmd.controller.attention import layer_resolution
from lmd.controller.cache import BoxKey, BoxResult
from lmd.controller.captions import Tokens, box_prompt
from lmd.controller.conditioning import Conditioning
from lmd.controller.denoise import denoise
from lmd.controller.engine import Run
from lmd.controller.guidance import AttentionEnergy, Target
from lmd.controller.masks import (
    coarse_masks,
    or_box,
    refine_with_sam,
    resize_masks,
)
from lmd.controller.memory import boxes_per_batch
from lmd.controller.noise import Cells, blend, gaussian


@dataclass
class BoxJob:
    """One object to draw: what, where on the latent grid, with which seed and tokens."""

    name: str
    seed: int
    cells: Cells
    tokens: Tokens
    key: BoxKey
    index: int = 0  # the (first) layout box this job draws, for trace names


@dataclass
class _Drawn:
    frames: torch.Tensor  # [S+1, C, h, w]
    attention: dict[str, torch.Tensor]  # layer -> [G, heads, P]
    mask_attention: torch.Tensor  # [ah, aw]
    image: object


def generate_boxes(
    run: Run,
    jobs: list[BoxJob],
    background_noise: torch.Tensor,
    background: str,
    negative: str,
    segmenter=None,
) -> list[BoxResult]:
    """Draw `jobs` (in batches of `box_batch_size`, or of what fits), then mask them all in one
    SAM call."""
    size = run.config.box_batch_size or boxes_per_batch(
        run.unet, run.store.layers.guidance, run.latent_hw, run.dtype, run.device
    )
    drawn: list[_Drawn] = []
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    for c, chunk in enumerate(chunks):
        drawn += _draw(run, chunk, background_noise, background, negative, c, len(chunks))
    masks = _masks(run, jobs, drawn, segmenter)
    return [
        BoxResult(
            key=job.key,
            cells=job.cells,
            frames=d.frames,
            mask=m,
            attention=d.attention,
            attention_hw={
                k: layer_resolution(v.shape[-1], run.latent_hw)
                for k, v in d.attention.items()
                if v.numel()
            },
            image=d.image,
        )
        for job, d, m in zip(jobs, drawn, masks, strict=True)
    ]


def _draw(run: Run, jobs, background_noise, background, negative, chunk, chunks) -> list[_Drawn]:
    cfg, layers = run.config, run.store.layers
    n, (lh, lw) = len(jobs), run.latent_hw
    method = run.method
    ratio = method.settings.blend_ratio
    noise = [
        blend(
            background_noise, gaussian(j.seed, background_noise.shape), j.cells.mask(lh, lw), ratio
        )
        for j in jobs
    ]
    latents = (torch.stack(noise) * run.init_sigma).to(run.device, run.dtype)
    names = [f"box{j.index}" for j in jobs]
    _emit_rows(run, names, "initial_latents", latents)
    cond = run.encode([box_prompt(background, j.name) for j in jobs])
    text = Conditioning.cat([run.encode([negative]).expand(n), cond])
    grounding = method.box_grounding(run, jobs)
    energy = None
    if method.settings.box_guidance:
        targets = [[Target(j.tokens.guided, (j.cells,))] for j in jobs]
        energy = AttentionEnergy(run, cond, targets, names, grounding=grounding)

    def capture(i: int) -> set[str]:
        layers_now = set(layers.guidance) if i < cfg.guidance_until else set()
        return layers_now | {layers.mask} if i >= cfg.mask_attn_from else layers_now

    # Everything the loop keeps stays on the device; it moves to the CPU once, after the loop.
    word = torch.tensor([[j.tokens.word] for j in jobs])
    frames = [latents]
    saved: dict[str, list[torch.Tensor]] = {k: [] for k in layers.guidance}
    mask_sum, mask_count = None, 0
    steps = denoise(
        run, latents, text, energy=energy, grounding=grounding, capture=capture, columns=word
    )
    for step in steps:
        for layer in layers.guidance:
            if layer in step.maps:
                saved[layer].append(step.maps[layer][..., 0])
        if layers.mask in step.maps:
            m = step.maps[layers.mask][..., 0].mean(1)
            mask_sum = m if mask_sum is None else mask_sum + m
            mask_count += 1
        frames.append(step.latents)
        _emit_rows(run, names, "latents", step.latents, step.index)
        run.progress("boxes", chunk * cfg.steps + step.index + 1, chunks * cfg.steps)
    images = run.decode(frames[-1])
    frames_t = torch.stack(frames, dim=1).cpu()  # [N, S+1, C, h, w]
    mask_hw = layer_resolution(mask_sum.shape[-1], run.latent_hw)
    mask_attn = (mask_sum / mask_count).reshape(n, *mask_hw).cpu()
    # layer -> [N, G, heads, P] (G guided steps), or nothing when no step was guided
    stacked = {
        layer: torch.stack(steps, dim=1).cpu() if steps else None for layer, steps in saved.items()
    }
    out = []
    for k in range(n):
        attention = {
            layer: maps[k] if maps is not None else torch.empty(0)
            for layer, maps in stacked.items()
        }
        out.append(_Drawn(frames_t[k], attention, mask_attn[k], images[k]))
    return out


def _emit_rows(run: Run, names: list[str], what: str, rows: torch.Tensor, step=None) -> None:
    if run.trace is not None:
        for name, row in zip(names, rows, strict=True):
            run.emit(f"{name}.{what}", row, step)


def _masks(run: Run, jobs: list[BoxJob], drawn: list[_Drawn], segmenter) -> list[torch.Tensor]:
    """Each object's mask on the latent grid, in the frame it was drawn in."""
    cfg = run.config
    lh, lw = run.latent_hw
    attn = torch.stack([d.mask_attention for d in drawn])
    coarse, peaks = coarse_masks(attn, cfg.gaussian_sigma, cfg.coarse_threshold)
    _emit_rows(run, [f"box{j.index}" for j in jobs], "coarse_mask", coarse)
    boxes = torch.stack([j.cells.mask(lh, lw) for j in jobs])
    sam = {
        "latent_hw": (lh, lw), "min_conf": cfg.sam_min_confidence,
        "min_iou": cfg.sam_min_coarse_iou, "resize": cfg.mask_resize,
    }  # fmt: skip
    if segmenter is None:
        masks = torch.nn.functional.interpolate(
            coarse[:, None].float(), size=(lh, lw), mode="nearest"
        )[:, 0].bool()
    else:
        points, xyxy, reference = run.method.sam_prompts(run, jobs, coarse, peaks, boxes)
        images = [d.image for d in drawn]
        masks = refine_with_sam(segmenter, images, reference, points=points, boxes=xyxy, **sam)
    if masks.shape[-2:] != (lh, lw):
        masks = resize_masks(masks, (lh, lw), cfg.mask_resize)
    return [or_box(m, b) for m, b in zip(masks, boxes, strict=True)]

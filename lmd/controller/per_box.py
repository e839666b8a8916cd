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
from lmd.controller.energy import box_energy, total_energy
from lmd.controller.engine import Run
from lmd.controller.masks import (
    cells_mask_at,
    coarse_masks,
    or_box,
    point_prompt,
    refine_with_sam,
    resize_masks,
)
from lmd.controller.noise import Cells, blend, gaussian
from lmd.controller.prompts import Tokens, box_prompt


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


def token_columns(tokens: list[Tokens]) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided-token columns padded to one length [N, T], and averaging weights [N, T]."""
    width = max(len(t.guided) for t in tokens)
    cols = torch.tensor([list(t.guided) + [t.guided[-1]] * (width - len(t.guided)) for t in tokens])
    weights = torch.tensor(
        [[1 / len(t.guided)] * len(t.guided) + [0.0] * (width - len(t.guided)) for t in tokens]
    )
    return cols, weights


def generate_boxes(
    run: Run,
    jobs: list[BoxJob],
    background_noise: torch.Tensor,
    background: str,
    negative: str,
    segmenter=None,
) -> list[BoxResult]:
    """Draw `jobs` (in batches of `box_batch_size`), then mask them all in one SAM call."""
    size = run.config.box_batch_size
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
    cfg, store, layers = run.config, run.store, run.store.layers
    n, (lh, lw) = len(jobs), run.latent_hw
    scheduler = run.scheduler()
    ratio = cfg.blend_ratio(run.method)
    noise = [
        blend(
            background_noise, gaussian(j.seed, background_noise.shape), j.cells.mask(lh, lw), ratio
        )
        for j in jobs
    ]
    latents = (torch.stack(noise) * scheduler.init_noise_sigma).to(run.device, run.dtype)
    names = [f"box{j.index}" for j in jobs]
    _emit_rows(run, names, "initial_latents", latents)
    cond = run.encode([box_prompt(background, j.name) for j in jobs])
    uncond = run.encode([negative]).expand(n, -1, -1)
    cfg_emb = torch.cat([uncond, cond])
    word = torch.tensor([[j.tokens.word] for j in jobs])
    plus = run.method == "lmd+"
    gl_cfg = gl_cond = None
    if plus:
        boxes = [[_normalised(j.cells, run.latent_hw)] for j in jobs]
        phrases = [[j.name] for j in jobs]
        gl_cfg = run.gligen(boxes, phrases, cfg=True)
        null = cfg.plus_guidance_grounding == "null"
        gl_cond = run.gligen(boxes, phrases, cfg=False, null=null)
    energy = BoxEnergy(run, [j.cells for j in jobs], [j.tokens for j in jobs], cond, gl_cond)
    energy.scheduler, energy.names = scheduler, names
    carried = torch.full((n,), float("inf"))  # the paper's stop rule: loss of the last update

    # Everything the loop keeps stays on the device; it moves to the CPU once, after the loop.
    frames = [latents]
    saved: dict[str, list[torch.Tensor]] = {k: [] for k in layers.guidance}
    mask_sum, mask_count = None, 0
    guided = cfg.box_guidance(run.method)
    with run.fusers() as fusers:
        for i, t in enumerate(scheduler.timesteps):
            fusers(plus and i < cfg.gligen_steps)
            if guided and cfg.iterations(i) > 0:
                energy.t, energy.step = t, i
                latents = run.guide(latents, i, t, scheduler, energy, carried)
            capture = set(layers.guidance) if i < cfg.guidance_until else set()
            if i >= cfg.mask_attn_from:
                capture.add(layers.mask)
            store.set(capture, word, cfg=True)
            eps = run.cfg_eps(latents, t, cfg_emb, scheduler, gligen=gl_cfg, rows=n)
            for layer in layers.guidance:
                if layer in store.maps:
                    saved[layer].append(store.maps[layer][..., 0])
            if layers.mask in store.maps:
                m = store.maps[layers.mask][..., 0].mean(1)
                mask_sum = m if mask_sum is None else mask_sum + m
                mask_count += 1
            store.clear()
            latents = scheduler.step(eps, t, latents).prev_sample
            frames.append(latents)
            _emit_rows(run, names, "latents", latents, i)
            run.progress("boxes", chunk * len(scheduler.timesteps) + i + 1, chunks * cfg.steps)
    images = run.decode(latents)
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


class BoxEnergy:
    """Energy of each per-box row (one object per row) at the current timestep `t`."""

    def __init__(self, run: Run, cells: list[Cells], tokens: list[Tokens], cond, gligen=None):
        self.run, self.cells, self.cond, self.gligen = run, cells, cond, gligen
        self.guided, self.weights = token_columns(tokens)
        self.scheduler = None
        self.t = None
        self.step: int | None = None
        self.names: list[str] | None = None  # trace name of each row
        self.stop_early = True
        self._masks: dict[int, torch.Tensor] = {}

    def masks_at(self, pixels: int) -> torch.Tensor:
        """Box masks [N, P] at a layer with `pixels` positions."""
        if pixels not in self._masks:
            run = self.run
            res = layer_resolution(pixels, run.latent_hw)
            self._masks[pixels] = torch.stack(
                [cells_mask_at(c, run.latent_hw, res, run.device).flatten() for c in self.cells]
            )
        return self._masks[pixels]

    def __call__(self, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        run, cfg, store = self.run, self.run.config, self.run.store
        cpu_rows = rows.cpu()
        columns = self.guided[cpu_rows]
        store.set(store.layers.guidance, columns, grad=True, stop_early=self.stop_early)
        gl = None if self.gligen is None else {k: v[rows] for k, v in self.gligen.items()}
        z_in = z if self.scheduler is None else self.scheduler.scale_model_input(z, self.t)
        run.unet_call(z_in, self.t, self.cond[rows], gligen=gl, rows=len(rows))
        per_layer = []
        for layer in store.layers.guidance:
            a = store.maps[layer]
            cols = torch.arange(a.shape[-1], device=a.device).expand(len(rows), 1, -1)
            per_layer.append(
                box_energy(
                    a,
                    self.masks_at(a.shape[2])[rows][:, None],
                    cols,
                    self.weights[cpu_rows][:, None].to(a.device),
                    fg_weight=cfg.fg_weight,
                    bg_weight=cfg.bg_weight,
                    topk_ratio=cfg.topk_ratio,
                )
            )
        store.clear()
        energies = total_energy(per_layer)
        if run.trace is not None and self.names is not None:
            for r, e in zip(cpu_rows.tolist(), energies, strict=True):
                run.emit(f"{self.names[r]}.energy", e, self.step)
        return energies


def _emit_rows(run: Run, names: list[str], what: str, rows: torch.Tensor, step=None) -> None:
    if run.trace is not None:
        for name, row in zip(names, rows, strict=True):
            run.emit(f"{name}.{what}", row, step)


def _normalised(cells: Cells, latent_hw) -> tuple[float, float, float, float]:
    lh, lw = latent_hw
    return (cells.x / lw, cells.y / lh, (cells.x + cells.w) / lw, (cells.y + cells.h) / lh)


def _masks(run: Run, jobs: list[BoxJob], drawn: list[_Drawn], segmenter) -> list[torch.Tensor]:
    """Each object's mask on the latent grid, in the frame it was drawn in."""
    cfg = run.config
    (lh, lw), (ih, iw) = run.latent_hw, run.image_hw
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
    elif run.method == "lmd+":
        xyxy = [
            tuple(
                v * s
                for v, s in zip(_normalised(j.cells, run.latent_hw), (iw, ih, iw, ih), strict=True)
            )
            for j in jobs
        ]
        images = [d.image for d in drawn]
        masks = refine_with_sam(segmenter, images, boxes, points=None, boxes=xyxy, **sam)
    else:
        corner = cfg.sam_point == "corner"
        points = [point_prompt(p, coarse.shape[-2:], (ih, iw), corner=corner) for p in peaks]
        images = [d.image for d in drawn]
        masks = refine_with_sam(segmenter, images, coarse, points=points, boxes=None, **sam)
    if masks.shape[-2:] != (lh, lw):
        masks = resize_masks(masks, (lh, lw), cfg.mask_resize)
    return [or_box(m, b) for m, b in zip(masks, boxes, strict=True)]

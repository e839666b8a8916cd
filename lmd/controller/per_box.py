"""Per-box generation: every object drawn on its own, all boxes in one batch (CFG batch 2N).

Each row of the batch is one object with its own prompt, initial noise and box; rows never
interact (the UNet treats batch rows independently), so the batch gives what box-by-box
generation gives, in one UNet call per step. Saved per object: the latents after every step,
the word token's attention on the guidance layers for the guided steps (attention transfer)
and its mean attention on the mask layer (masks), and the decoded image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lmd.controller.cache import BoxKey, BoxResult
from lmd.controller.captions import TokenRule, Tokens, box_prompt
from lmd.controller.config import Guidance, LMDConfig, MaskSettings, Schedule
from lmd.controller.denoise import denoise
from lmd.controller.engine import Run
from lmd.controller.guidance import AttentionEnergy, Target
from lmd.controller.masks import coarse_masks, or_box, refine_with_sam, resize_masks
from lmd.controller.methods.base import BoxMethod, normalised
from lmd.controller.noise import Cells, blend, gaussian
from lmd.controller.phase import Phase, PhaseObject, PhaseRow


@dataclass(frozen=True)
class BoxPhase:
    """Everything the per-box generation reads besides each object's own job (its name, seed,
    box and tokens), and nothing else: the cache keys on it."""

    method: BoxMethod  # the method's per-box view (`BoxMethod.per_box()`)
    schedule: Schedule
    guidance: Guidance | None  # None: the method does not guide its per-box generation
    tokens: TokenRule
    masks: MaskSettings
    negative: str  # the layout's negative prompt, the quality and the per-box negatives

    @classmethod
    def of(cls, config: LMDConfig, method: BoxMethod, layout_negative: str) -> BoxPhase:
        guided = method.settings.box_guidance
        negative = ", ".join(
            p for p in (layout_negative, config.quality_negative, config.per_box_negative) if p
        )
        return cls(
            method.per_box(), config.schedule, config.group(Guidance) if guided else None,
            TokenRule.of(config), config.group(MaskSettings), negative,
        )  # fmt: skip


@dataclass
class BoxJob:
    """One object to draw: what, where on the latent grid, with which seed and tokens."""

    name: str
    seed: int
    cells: Cells
    tokens: Tokens
    key: BoxKey
    index: int = 0  # the (first) layout box this job draws, for trace names
    background: str | None = None  # its image's background prompt (None: the call's)
    noise: torch.Tensor | None = None  # its image's background noise [C, h, w] (None: the call's)
    trace: str | None = None  # its trace name (None: box{index})


@dataclass
class _Drawn:
    frames: torch.Tensor  # [S+1, C, h, w]
    attention: dict[str, torch.Tensor]  # layer -> [G, heads, P]
    mask_attention: torch.Tensor  # [ah, aw]
    image: object


def generate_boxes(
    run: Run,
    jobs: list[BoxJob],
    phase: BoxPhase,
    background_noise: torch.Tensor | None,
    background: str | None,
    segmenter=None,
) -> list[BoxResult]:
    """Draw `jobs` (in batches of `run.box_batch_size`, or of what fits), then mask them all in
    one SAM call. The generation reads its settings from `phase` only (the run's config is not
    handed on). A job that names its own background prompt and noise (a story's images each
    have theirs) is drawn over those instead of `background` and `background_noise`."""
    run = dataclasses.replace(run, config=None, method=phase.method)
    size = run.box_batch_size or run.backbone.boxes_per_batch(run.store.layers, run.latent_hw)
    drawn: list[_Drawn] = []
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    for c, chunk in enumerate(chunks):
        drawn += _draw(run, phase, chunk, background_noise, background, c, len(chunks))
    masks = _masks(run, phase, jobs, drawn, segmenter)
    return [
        BoxResult(
            key=job.key,
            cells=job.cells,
            frames=d.frames,
            mask=m,
            attention=d.attention,
            attention_hw={
                k: run.backbone.attention_hw(v.shape[-1], run.latent_hw)
                for k, v in d.attention.items()
                if v.numel()
            },
            image=d.image,
        )
        for job, d, m in zip(jobs, drawn, masks, strict=True)
    ]


def _draw(
    run: Run, phase: BoxPhase, jobs, background_noise, background, chunk, chunks
) -> list[_Drawn]:
    layers, schedule, backbone = run.store.layers, phase.schedule, run.backbone
    n, (lh, lw) = len(jobs), run.latent_hw
    ratio = phase.method.settings.blend_ratio
    noise = []
    for j in jobs:
        bg = j.noise if j.noise is not None else background_noise
        noise.append(blend(bg, gaussian(j.seed, bg.shape), j.cells.mask(lh, lw), ratio))
    sigma = backbone.init_sigma(backbone.scheduler(schedule.steps, run.latent_hw))
    latents = (torch.stack(noise) * sigma).to(run.device, run.dtype)
    names = [_trace_name(j) for j in jobs]
    _emit_rows(run, names, "initial_latents", latents)
    prompts = [box_prompt(j.background if j.background is not None else background, j.name)
               for j in jobs]  # fmt: skip
    cond = run.encode(prompts)
    negative = run.encode([phase.negative]).expand(n)
    hooks = phase.method.hooks(run, _phase(run, jobs, prompts, schedule.steps))
    energy = None
    if phase.guidance is not None:
        targets = [[Target(j.tokens.guided, (j.cells,))] for j in jobs]
        energy = AttentionEnergy(run, cond, targets, names, hooks=hooks, guidance=phase.guidance)

    def capture(i: int) -> set[str]:
        layers_now = set(layers.guidance) if i < schedule.guidance_until else set()
        return layers_now | {layers.mask} if i >= schedule.mask_attn_from else layers_now

    # Everything the loop keeps stays on the device; it moves to the CPU once, after the loop.
    word = torch.tensor([[j.tokens.word] for j in jobs])
    frames = [latents]
    saved: dict[str, list[torch.Tensor]] = {k: [] for k in layers.guidance}
    mask_sum, mask_count = None, 0
    steps = denoise(
        run, latents, cond, negative, energy=energy, hooks=hooks, capture=capture, columns=word,
        schedule=schedule, guidance=phase.guidance, phase="boxes",
    )  # fmt: skip
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
        run.progress("boxes", chunk * schedule.steps + step.index + 1, chunks * schedule.steps)
    images = run.decode(frames[-1])
    frames_t = torch.stack(frames, dim=1).cpu()  # [N, S+1, C, h, w]
    mask_hw = backbone.attention_hw(mask_sum.shape[-1], run.latent_hw)
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


def _trace_name(job: BoxJob) -> str:
    return job.trace if job.trace is not None else f"box{job.index}"


def _emit_rows(run: Run, names: list[str], what: str, rows: torch.Tensor, step=None) -> None:
    if run.trace is not None:
        for name, row in zip(names, rows, strict=True):
            run.emit(f"{name}.{what}", row, step)


def _phase(run: Run, jobs: list[BoxJob], prompts: list[str], steps: int) -> Phase:
    """The per-box phase as the method's hooks see it: one row per object, drawn at its cells
    (`xyxy`: those cells as fractions of the latent grid)."""
    rows = tuple(
        PhaseRow(p, (PhaseObject(j.name, j.name, j.cells, normalised(j.cells, run.latent_hw),
                                 j.tokens, j.index),))
        for j, p in zip(jobs, prompts, strict=True)
    )  # fmt: skip
    return Phase("boxes", rows, run.image_hw, run.latent_hw, steps)


def _masks(
    run: Run, phase: BoxPhase, jobs: list[BoxJob], drawn: list[_Drawn], segmenter
) -> list[torch.Tensor]:
    """Each object's mask on the latent grid, in the frame it was drawn in."""
    cfg = phase.masks
    lh, lw = run.latent_hw
    attn = torch.stack([d.mask_attention for d in drawn])
    coarse, peaks = coarse_masks(attn, cfg.gaussian_sigma, cfg.coarse_threshold)
    _emit_rows(run, [_trace_name(j) for j in jobs], "coarse_mask", coarse)
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
        points, xyxy, reference = phase.method.sam_prompts(run, jobs, coarse, peaks, boxes, cfg)
        images = [d.image for d in drawn]
        masks = refine_with_sam(segmenter, images, reference, points=points, boxes=xyxy, **sam)
    if masks.shape[-2:] != (lh, lw):
        masks = resize_masks(masks, (lh, lw), cfg.mask_resize)
    return [or_box(m, b) for m, b in zip(masks, boxes, strict=True)]

"""Overall generation from the composed latents (Lian et al. 2024, Sec. 3.3), and plain SD.

For the first `frozen_ratio` of the steps the latents inside the objects' masks are replaced
after each scheduler step by the composed ones; for the guided steps the energy of every
object plus attention transfer (L1 to each box's own attention at the same step, shifted to
its place) steers the cross-attention. LMD+ adds GLIGEN grounding for the first 40% of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmd.controller.attention import layer_resolution
from lmd.controller.compose import Composed
from lmd.controller.energy import box_energy, total_energy, transfer_loss
from lmd.controller.engine import Run
from lmd.controller.masks import cells_mask_at
from lmd.controller.noise import Cells
from lmd.controller.prompts import Tokens


@dataclass
class OverallObject:
    """One distinct name in the overall prompt, its tokens, and its boxes."""

    tokens: Tokens
    boxes: list[int]  # indices into the placed boxes
    phrase: str = ""  # as the overall prompt says it ("two cats")


@dataclass
class PlacedBox:
    name: str
    cells: Cells  # the box from the layout on the latent grid
    xyxy: tuple[float, float, float, float]  # normalised, for GLIGEN
    attention: dict[str, torch.Tensor]  # layer -> [G, heads, P], shifted into place


def generate_overall(
    run: Run,
    latents: torch.Tensor,
    prompt: str,
    negative: str,
    *,
    composed: Composed | None = None,
    objects: list[OverallObject] = (),
    boxes: list[PlacedBox] = (),
) -> torch.Tensor:
    """Denoise `latents` [1, C, h, w] under the overall prompt; returns the final latents."""
    cfg, store = run.config, run.store
    scheduler = run.scheduler()
    cfg_emb = run.encode([negative, prompt])
    cond = cfg_emb[1:]
    plus = run.method == "lmd+" and bool(boxes)
    gl_cfg = gl_cond = None
    if plus:
        xyxy, names = grounding(cfg, objects, boxes)
        gl_cfg = run.gligen(xyxy, names, cfg=True)
        gl_cond = run.gligen(xyxy, names, cfg=False, null=cfg.plus_guidance_grounding == "null")
    objects = [o for o in objects if o.tokens.guided]
    guided = cfg.overall_guidance and bool(objects) and run.method != "sd"
    energy = _overall_energy(run, objects, boxes, cond, gl_cond, scheduler) if guided else None
    carried = torch.full((1,), float("inf"))  # the paper's stop rule: loss of the last update
    latents = latents.to(run.device, run.dtype)
    frozen = targets = None
    if composed is not None:  # moved to the device once, not once per step
        frozen = composed.union.to(run.device)
        targets = composed.frames[: cfg.frozen_steps + 1].to(run.device, run.dtype)
    with run.fusers() as fusers:
        for i, t in enumerate(scheduler.timesteps):
            fusers(plus and i < cfg.gligen_steps)
            if guided and cfg.iterations(i) > 0:
                energy.step, energy.t = i, t
                latents = run.guide(latents, i, t, scheduler, energy, carried)
            store.clear()
            eps = run.cfg_eps(latents, t, cfg_emb, scheduler, gligen=gl_cfg)
            latents = scheduler.step(eps, t, latents).prev_sample
            run.emit("overall.latents", latents[0], i)
            if frozen is not None and i < cfg.frozen_steps:
                latents = torch.where(frozen, targets[i + 1], latents)
            run.progress("overall", i + 1, cfg.steps)
    return latents


def grounding(cfg, objects: list[OverallObject], boxes: list[PlacedBox]):
    """GLIGEN's boxes and phrases for the overall image (one row), at most its slot count.

    The paper's code grounds the first boxes in prompt order, each on its object's counted
    phrase; lmd can keep the largest boxes (`gligen_keep`) and ground each on its own name.
    """
    phrase = {b: o.phrase for o in objects for b in o.boxes}
    if cfg.gligen_keep == "first":
        order = [b for o in objects for b in o.boxes] or list(range(len(boxes)))
    else:
        order = sorted(range(len(boxes)), key=lambda i: -boxes[i].cells.w * boxes[i].cells.h)
    grounded = order[: cfg.gligen_max_objects]
    counted = cfg.plus_overall_phrase == "counted"
    names = [phrase.get(i, boxes[i].name) if counted else boxes[i].name for i in grounded]
    return [[boxes[i].xyxy for i in grounded]], [names]


class _overall_energy:  # noqa: N801 (a callable used like a function)
    """Energy of the overall image at the current step: all objects plus attention transfer."""

    def __init__(self, run: Run, objects, boxes, cond, gligen, scheduler):
        self.run, self.objects, self.boxes = run, objects, boxes
        self.cond, self.gligen, self.scheduler = cond, gligen, scheduler
        self.step, self.t = 0, None
        # Captured columns: every object's guided tokens (then its word token, if not one of
        # them), in object order.
        cols, self.obj_cols, self.obj_weights, self.word_col = [], [], [], {}
        width = max(len(o.tokens.guided) for o in objects)
        for o in objects:
            start = len(cols)
            cols += list(o.tokens.guided)
            idx = list(range(start, len(cols)))
            self.obj_cols.append(idx + [idx[-1]] * (width - len(idx)))
            self.obj_weights.append([1 / len(idx)] * len(idx) + [0.0] * (width - len(idx)))
            if o.tokens.word is None:  # cut off by the encoder's length: no transfer
                continue
            if o.tokens.word in o.tokens.guided:
                word = start + o.tokens.guided.index(o.tokens.word)
            else:
                cols.append(o.tokens.word)
                word = len(cols) - 1
            for b in o.boxes:
                self.word_col[b] = word
        self.columns = torch.tensor([cols])
        # Each box's own attention (transfer targets), on the device once for all steps.
        self.refs = [{k: v.to(run.device) for k, v in b.attention.items()} for b in boxes]
        self._masks: dict[int, tuple] = {}

    def masks(self, pixels: int):
        """Per-object union masks [1, O, P] and per-box masks [J, P] at a layer's size."""
        if pixels not in self._masks:
            run = self.run
            res = layer_resolution(pixels, run.latent_hw)
            per_box = [
                cells_mask_at(b.cells, run.latent_hw, res, run.device).flatten() for b in self.boxes
            ]
            union = [torch.stack([per_box[b] for b in o.boxes]).any(0) for o in self.objects]
            self._masks[pixels] = (torch.stack(union)[None], per_box)
        return self._masks[pixels]

    def __call__(self, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        run, cfg, store = self.run, self.run.config, self.run.store
        store.set(store.layers.guidance, self.columns, grad=True, stop_early=True)
        z_in = self.scheduler.scale_model_input(z, self.t)
        run.unet_call(z_in, self.t, self.cond, gligen=self.gligen)
        device = z.device
        cols = torch.tensor([self.obj_cols], device=device)
        weights = torch.tensor([self.obj_weights], device=device)
        per_layer, transfer = [], 0
        for layer in store.layers.guidance:
            a = store.maps[layer]
            union, per_box = self.masks(a.shape[2])
            per_layer.append(
                box_energy(
                    a, union, cols, weights,
                    fg_weight=cfg.fg_weight, bg_weight=cfg.bg_weight, topk_ratio=cfg.topk_ratio,
                )
            )  # fmt: skip
            transfer = transfer + self._transfer(layer, a, per_box)
        store.clear()
        energies = total_energy(per_layer, transfer)
        run.emit("overall.energy", energies[0], self.step)
        return energies

    def _transfer(self, layer: str, a: torch.Tensor, per_box: list[torch.Tensor]):
        cfg = self.run.config
        if cfg.transfer_weight == 0:
            return 0
        loss = 0
        for o in self.objects:
            refs = [self.refs[b].get(layer) for b in o.boxes]
            usable = [
                (b, r)
                for b, r in zip(o.boxes, refs, strict=True)
                if r is not None and len(r) > self.step and b in self.word_col
            ]
            if not usable:
                continue
            attn = torch.stack([a[0, :, :, self.word_col[b]] for b, _ in usable])
            ref = torch.stack([r[self.step] for _, r in usable])
            masks = torch.stack([per_box[b] for b, _ in usable])
            l1 = transfer_loss(attn, ref, masks, cfg.transfer_eps)
            loss = loss + cfg.transfer_weight * l1.sum() / len(o.boxes)
        return loss

"""`Controller`: draws a `Layout` with layout-grounded Stable Diffusion (LMD, LMD+ or plain SD).

    controller = Controller(pipe)
    result = controller.render(layout, seed=0, method="lmd")
    result.image.save("image.png")

Layouts with no boxes are drawn as plain SD from the background prompt (there is nothing to
ground). Any number of boxes works: boxes are drawn `box_batch_size` at a time (by default
what fits in the GPU's free memory); objects whose tokens fall past the text encoder's 77 in
the overall prompt get no overall guidance (a warning says which); LMD+ grounds at most its
`max_objects` boxes, the largest.
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from lmd.controller.attention import AttentionStore, installed
from lmd.controller.cache import BoxCache, BoxKey, BoxResult
from lmd.controller.captions import (
    TokenRule,
    box_tokens,
    overall_phrases,
    overall_prompt,
    overall_tokens,
)
from lmd.controller.compose import compose, shift, shift_flat
from lmd.controller.config import LMDConfig
from lmd.controller.engine import Callback, Counts, Run
from lmd.controller.family import family_of
from lmd.controller.masks import shift_unit
from lmd.controller.methods import Method, get_method
from lmd.controller.noise import gaussian, object_seeds, to_cells
from lmd.controller.overall import OverallObject, PlacedBox, generate_overall
from lmd.controller.per_box import BoxJob, generate_boxes
from lmd.controller.trace import Trace
from lmd.layouts.model import Layout


@dataclass
class RenderResult:
    image: Image.Image
    layout: Layout  # scaled to the image
    box_images: list[Image.Image]  # each object drawn on its own, in layout order
    masks: list[torch.Tensor]  # each object's mask on the latent grid, in place (bool)
    generated: int  # per-box generations run for this image
    reused: int  # per-box results taken from the cache
    unet_forwards: int
    unet_backwards: int
    seconds: float
    object_seeds: list[int] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)


class Controller:
    """Layout-to-image with LMD / LMD+ on a diffusers Stable Diffusion pipeline."""

    def __init__(
        self,
        pipe,
        config: LMDConfig | None = None,
        segmenter=None,
        refine=None,
        model_id: str | None = None,
    ):
        self.pipe = pipe
        self.config = config or LMDConfig()
        self.segmenter = segmenter
        self.refine = refine
        self.model_id = model_id or f"{type(pipe.unet).__name__}@{id(pipe):x}"
        self.family = family_of(pipe)
        self.layers = self.family.hooked_layers(pipe.unet)

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)

    @property
    def native_size(self) -> tuple[int, int]:
        """(height, width) the UNet was trained at."""
        size = self.pipe.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else size
        return h * self.vae_scale, w * self.vae_scale

    def check_inputs(self, layout, seed, method, height, width, object_seeds) -> None:
        if not isinstance(layout, Layout):
            raise ValueError(
                f"`layout` must be an lmd.layouts.Layout but is {type(layout).__name__}"
            )
        get_method(method).check(self.pipe, self.family)
        if not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"`seed` must be an integer in [0, 2**63) but is {seed!r}")
        m = self.vae_scale
        if height <= 0 or width <= 0 or height % m or width % m:
            raise ValueError(
                f"`height` and `width` have to be positive and divisible by {m} "
                f"but are {height} and {width}"
            )
        if object_seeds is not None and len(object_seeds) != len(layout.boxes):
            raise ValueError(
                f"`object_seeds` has {len(object_seeds)} entries but the layout has "
                f"{len(layout.boxes)} boxes"
            )

    def render(
        self,
        layout: Layout,
        *,
        seed: int = 0,
        object_seeds: list[int | None] | None = None,
        method: str | Method = "lmd",
        height: int | None = None,
        width: int | None = None,
        cache: BoxCache | None = None,
        callback: Callback | None = None,
        trace: Trace | None = None,
    ) -> RenderResult:
        """Draw `layout`; `callback(phase, step, total)` is called after every denoising step.

        `trace(name, tensor, step)` receives the named intermediates (see `lmd.controller.trace`).
        """
        start = time.perf_counter()
        # 1. Check inputs and scale the layout to the image.
        nh, nw = self.native_size
        height, width = height or nh, width or nw
        method = get_method(method)
        self.check_inputs(layout, seed, method, height, width, object_seeds)
        scaled = layout.scaled(width, height)
        cfg = self.config
        latent_hw = (height // self.vae_scale, width // self.vae_scale)
        store = AttentionStore(self.layers)
        run = Run(
            self.pipe, cfg, method, store, (height, width), latent_hw, callback, trace=trace,
            family=self.family,
        )  # fmt: skip
        seeds = _seeds(seed, scaled, object_seeds, cfg)
        channels = self.pipe.unet.config.in_channels
        background_noise = gaussian(seed, (channels, *latent_hw))
        overall_negative = _join(scaled.negative, cfg.quality_negative)
        sigma = run.init_sigma

        # 2. Plain SD (also LMD's answer to a layout without boxes).
        phrases, groups = overall_phrases(scaled.names, sort=cfg.prompt_order == "sorted")
        prompt = overall_prompt(scaled.background, phrases)
        if not method.grounded or not scaled.boxes:
            latents = generate_overall(
                run, (background_noise * sigma)[None], prompt, overall_negative
            )
            image = self._finish(run, latents, prompt)
            return self._result(image, scaled, [], [], 0, 0, run, seeds, start)

        with torch.no_grad(), installed(self.pipe.unet, store):
            # 3. Per-box generation: reuse cached objects, draw the rest in one batch.
            results, generated, reused = self._boxes(
                run, scaled, seeds, seed, cache, background_noise
            )
            # 4. Shift each object into its box and compose the latents.
            placed, masks, frames, valid = self._place(run, scaled, results)
            paste = valid if cfg.frame0_paste == "valid" else None
            composed = compose(background_noise * sigma, frames, masks, paste)
            run.emit("composed", composed.frames)
            # 5. Overall generation under frozen steps and guidance.
            rule = TokenRule.of(cfg)
            tokens = overall_tokens(self.pipe.tokenizer, scaled.background, phrases, rule)
            objects = [
                OverallObject(t, g, p) for t, g, p in zip(tokens, groups, phrases, strict=True)
            ]
            _warn_truncated(objects, phrases)
            latents = generate_overall(
                run, composed.frames[0][None], prompt, overall_negative,
                composed=composed, objects=objects, boxes=placed,
            )  # fmt: skip
        # 6. Decode (and refine).
        image = self._finish(run, latents, prompt)
        box_images = [r.image for r in results]
        return self._result(image, scaled, box_images, masks, generated, reused, run, seeds, start)

    def box_jobs(self, run: Run, layout: Layout, seeds: list[int], seed: int) -> list[BoxJob]:
        """What each box is drawn as: where on the latent grid, its tokens and cache key."""
        cfg, tok = self.config, self.pipe.tokenizer
        jobs: list[BoxJob] = []
        rule, view = TokenRule.of(cfg), cfg.per_box_view(run.method)  # the same for every box
        for index, (box, obj_seed) in enumerate(zip(layout.boxes, seeds, strict=True)):
            cells = to_cells(box.xyxy, run.image_hw, run.latent_hw)
            drawn_at = run.method.draw_at(cells, run.latent_hw, cfg)
            tokens = box_tokens(tok, layout.background, box.name, rule)
            if not tokens.guided or tokens.word is None:
                raise ValueError(
                    f"the prompt for {box.name!r} is longer than the text encoder's "
                    f"{tok.model_max_length} tokens; shorten the background prompt"
                )
            key = BoxKey(
                self.model_id, box.name, (cells.w, cells.h), obj_seed, seed, layout.background,
                layout.negative, run.method, run.latent_hw, view,
            )  # fmt: skip
            jobs.append(BoxJob(box.name, obj_seed, drawn_at, tokens, key, index))
        return jobs

    def _boxes(self, run: Run, layout: Layout, seeds, seed, cache, background_noise):
        cfg = self.config
        jobs = self.box_jobs(run, layout, seeds, seed)
        found = {j.key: cache.get(j.key) for j in jobs} if cache is not None else {}
        missing = list({j.key: j for j in jobs if found.get(j.key) is None}.values())
        if missing:
            negative = _join(layout.negative, cfg.quality_negative, cfg.per_box_negative)
            fresh = generate_boxes(
                run, missing, background_noise, layout.background, negative, self.segmenter
            )
            for result in fresh:
                found[result.key] = result
                if cache is not None:
                    cache.put(result)
        return [found[j.key] for j in jobs], len(missing), len(jobs) - len(missing)

    def _place(self, run: Run, layout: Layout, results: list[BoxResult]):
        """Shift every object from where it was drawn to its box (in steps of the shift grid)."""
        (lh, lw), (ih, iw) = run.latent_hw, run.image_hw
        ch, cw = lh, lw
        for block in self.pipe.unet.down_blocks:
            if getattr(block, "downsamplers", None):
                ch, cw = (ch + 1) // 2, (cw + 1) // 2
        ux = shift_unit(lw, cw, self.config.shift_grid)
        uy = shift_unit(lh, ch, self.config.shift_grid)
        placed, masks, frames, valid = [], [], [], []
        for i, (box, res) in enumerate(zip(layout.boxes, results, strict=True)):
            cells = to_cells(box.xyxy, run.image_hw, run.latent_hw)
            cx, cy = box.center
            target = (cx * lw / iw, cy * lh / ih)
            off_x, off_y = run.method.offset(
                res.mask, res.cells, cells, target, run.latent_hw, self.config
            )
            dx, dy = round(off_x / ux) * ux, round(off_y / uy) * uy
            attention = {}
            for layer, maps in res.attention.items():
                if not maps.numel():
                    continue
                rh, rw = res.attention_hw[layer]
                adx, ady = round(dx * rw / lw), round(dy * rh / lh)
                attention[layer] = shift_flat(maps, adx, ady, (rh, rw))
            masks.append(shift(res.mask, dx, dy))
            if run.trace is not None:
                run.emit(f"box{i}.mask", res.mask)
                run.emit(f"box{i}.offset", torch.tensor([off_x, off_y], dtype=torch.float32))
                run.emit(f"box{i}.shift", torch.tensor([dx, dy]))
                run.emit(f"box{i}.placed_mask", masks[-1])
            frames.append(shift(res.frames, dx, dy))
            valid.append(shift(torch.ones(lh, lw, dtype=torch.bool), dx, dy))
            xyxy = (box.x / iw, box.y / ih, (box.x + box.w) / iw, (box.y + box.h) / ih)
            placed.append(PlacedBox(box.name, cells, xyxy, attention))
        return placed, masks, frames, valid

    def _finish(self, run: Run, latents: torch.Tensor, prompt: str) -> Image.Image:
        """Decode, then refine (a refiner that takes `prompt` gets the overall prompt)."""
        run.emit("final_latents", latents)
        image = run.decode(latents)[0]
        if run.trace is not None:
            run.emit("image", torch.from_numpy(np.asarray(image).copy()))
        if self.refine is None:
            return image
        if "prompt" in inspect.signature(self.refine).parameters:
            return self.refine(image, prompt=prompt)
        return self.refine(image)

    def _result(self, image, layout, box_images, masks, generated, reused, run, seeds, start):
        return RenderResult(
            image=image,
            layout=layout,
            box_images=box_images,
            masks=masks,
            generated=generated,
            reused=reused,
            unet_forwards=run.counts.forwards,
            unet_backwards=run.counts.backwards,
            seconds=time.perf_counter() - start,
            object_seeds=seeds,
            counts=run.counts,
        )


def _seeds(seed: int, layout: Layout, explicit, cfg: LMDConfig) -> list[int]:
    return object_seeds(
        seed, layout.names, list(explicit) if explicit is not None else None,
        by_index=cfg.object_seed_rule == "index", start=cfg.fg_seed_start,
    )  # fmt: skip


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def _warn_truncated(objects: list[OverallObject], phrases: list[str]) -> None:
    lost = [p for o, p in zip(objects, phrases, strict=True) if not o.tokens.guided]
    if lost:
        warnings.warn(
            f"the overall prompt is longer than the text encoder reads; no overall guidance for "
            f"{', '.join(repr(p) for p in lost)}",
            stacklevel=3,
        )


__all__ = ["Controller", "RenderResult"]

"""LMD's flow (Lian et al. 2024, Sec. 3): every object drawn on its own (reusing cached ones),
masked, shifted into its box, the objects' latents composed, then the whole image generated
from the composition under frozen steps and guidance. The method answers where each object is
drawn, how SAM is prompted and how a drawn object is moved (`BoxMethod`), and what it changes
in each phase (`hooks`)."""

from __future__ import annotations

import torch

from lmd.controller.attention import installed
from lmd.controller.cache import BoxKey, BoxResult
from lmd.controller.captions import box_tokens
from lmd.controller.compose import compose, shift, shift_flat
from lmd.controller.engine import Run
from lmd.controller.flows.base import Drawing, Drawn, OverallText
from lmd.controller.masks import shift_unit
from lmd.controller.noise import to_cells
from lmd.controller.overall import OverallObject, PlacedBox, generate_overall
from lmd.controller.per_box import BoxJob, BoxPhase, generate_boxes
from lmd.controller.phase import Phase


class Boxes:
    """`draw(drawing)`: LMD's per-box generation, composition and overall generation."""

    def draw(self, drawing: Drawing) -> Drawn:
        run, layout = drawing.run, drawing.layout
        text = OverallText.of(run, layout)
        with torch.no_grad(), installed(run.backbone.denoiser, run.store,
                                        run.backbone.capture_processor):  # fmt: skip
            # 1. Per-box generation: reuse cached objects, draw the rest in one batch.
            results, generated, reused = boxes(drawing)
            # 2. Shift each object into its box and compose the latents.
            placed, masks, frames, valid = place(run, layout, results)
            settings = run.method.settings
            paste = valid if settings.frame0_paste == "valid" else None
            composed = compose(drawing.background_noise * run.init_sigma, frames, masks, paste)
            run.emit("composed", composed.frames)
            # 3. Overall generation under frozen steps and guidance.
            objects = [
                OverallObject(t, g, p)
                for t, g, p in zip(text.tokens, text.groups, text.phrases, strict=True)
            ]
            _warn_truncated(objects, text.phrases)
            row = text.row(run, layout, [b.cells for b in placed])
            phase = Phase("overall", (row,), run.image_hw, run.latent_hw, run.config.steps)
            latents = generate_overall(
                run, composed.frames[0][None], text.prompt, drawing.negative,
                composed=composed, objects=objects, boxes=placed,
                hooks=run.method.hooks(run, phase),
            )  # fmt: skip
        box_images = [r.image for r in results]
        return Drawn(latents, text.prompt, box_images, masks, generated, reused)


def box_jobs(drawing: Drawing, phase: BoxPhase) -> list[BoxJob]:
    """What each box is drawn as: where on the latent grid, its tokens and cache key."""
    run, layout = drawing.run, drawing.layout
    tok = run.backbone.tokenizer
    jobs: list[BoxJob] = []
    for index, (box, obj_seed) in enumerate(zip(layout.boxes, drawing.object_seeds, strict=True)):
        cells = to_cells(box.xyxy, run.image_hw, run.latent_hw)
        drawn_at = phase.method.draw_at(cells, run.latent_hw, run.config)
        tokens = box_tokens(tok, layout.background, box.name, phase.tokens)
        if not tokens.guided or tokens.word is None:
            raise ValueError(
                f"the prompt for {box.name!r} is longer than the text encoder's "
                f"{tok.model_max_length} tokens; shorten the background prompt"
            )
        key = BoxKey(
            drawing.model_id, box.name, (cells.w, cells.h), obj_seed, drawing.seed,
            layout.background, run.latent_hw, phase, run.backbone.sampler(),
        )  # fmt: skip
        jobs.append(BoxJob(box.name, obj_seed, drawn_at, tokens, key, index))
    return jobs


def boxes(drawing: Drawing) -> tuple[list[BoxResult], int, int]:
    """Every box's own generation, from the cache where it holds it: (results in layout order,
    how many were drawn, how many reused)."""
    run, layout, cache = drawing.run, drawing.layout, drawing.cache
    phase = BoxPhase.of(run.config, run.method, layout.negative)
    jobs = box_jobs(drawing, phase)
    found = {j.key: cache.get(j.key) for j in jobs} if cache is not None else {}
    missing = list({j.key: j for j in jobs if found.get(j.key) is None}.values())
    if missing:
        fresh = generate_boxes(
            run, missing, phase, drawing.background_noise, layout.background, drawing.segmenter
        )
        for result in fresh:
            found[result.key] = result
            if cache is not None:
                cache.put(result)
    return [found[j.key] for j in jobs], len(missing), len(jobs) - len(missing)


def place(run: Run, layout, results: list[BoxResult]):
    """Shift every object from where it was drawn to its box (in steps of the shift grid)."""
    (lh, lw), (ih, iw) = run.latent_hw, run.image_hw
    ch, cw = run.backbone.coarsest_grid(run.latent_hw)
    grid = run.method.settings.shift_grid
    ux, uy = shift_unit(lw, cw, grid), shift_unit(lh, ch, grid)
    placed, masks, frames, valid = [], [], [], []
    for i, (box, res) in enumerate(zip(layout.boxes, results, strict=True)):
        cells = to_cells(box.xyxy, run.image_hw, run.latent_hw)
        cx, cy = box.center
        target = (cx * lw / iw, cy * lh / ih)
        off_x, off_y = run.method.offset(
            res.mask, res.cells, cells, target, run.latent_hw, run.config
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


def _warn_truncated(objects: list[OverallObject], phrases: list[str]) -> None:
    import warnings

    lost = [p for o, p in zip(objects, phrases, strict=True) if not o.tokens.guided]
    if lost:
        warnings.warn(
            f"the overall prompt is longer than the text encoder reads; no overall guidance for "
            f"{', '.join(repr(p) for p in lost)}",
            stacklevel=4,
        )


BOXES = Boxes()

__all__ = ["BOXES", "Boxes", "box_jobs", "boxes", "place"]

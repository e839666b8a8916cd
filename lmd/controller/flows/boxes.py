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
from lmd.controller.overall import OverallImage, OverallObject, PlacedBox, generate_overall_rows
from lmd.controller.per_box import BoxJob, BoxPhase, generate_boxes
from lmd.controller.phase import Phase
from lmd.controller.trace import row_name


class Boxes:
    """`draw(drawing)`: LMD's per-box generation, composition and overall generation;
    `draw_many(drawings)`: the same for several images (every image's boxes in one per-box
    phase, the images as rows of one overall phase)."""

    def draw(self, drawing: Drawing) -> Drawn:
        return self.draw_many([drawing])[0]

    def draw_many(self, drawings: list[Drawing]) -> list[Drawn]:
        run, n = drawings[0].run, len(drawings)
        texts = [OverallText.of(run, d.layout) for d in drawings]
        with torch.no_grad(), installed(run.backbone.denoiser, run.store,
                                        run.backbone.capture_processor):  # fmt: skip
            # 1. Per-box generation: reuse cached objects, draw the rest in one batch.
            found = boxes_many(drawings)
            # 2. Shift each object into its box and compose the latents.
            settings = run.method.settings
            images, rows, starts, placed_masks = [], [], [], []
            for k, (d, text, (results, _, _)) in enumerate(zip(drawings, texts, found,
                                                               strict=True)):  # fmt: skip
                placed, masks, frames, valid = place(run, d.layout, results, prefix(k, n))
                start = d.background_noise * run.init_sigma
                composed = None
                if d.layout.boxes:
                    paste = valid if settings.frame0_paste == "valid" else None
                    composed = compose(start, frames, masks, paste)
                    run.emit(row_name(k, n, "composed"), composed.frames)
                    start = composed.frames[0]
                objects = [
                    OverallObject(t, g, p)
                    for t, g, p in zip(text.tokens, text.groups, text.phrases, strict=True)
                ]
                _warn_truncated(objects, text.phrases)
                rows.append(text.row(run, d.layout, [b.cells for b in placed], masks))
                images.append(OverallImage(composed, objects, placed))
                starts.append(start)
                placed_masks.append(masks)
            # 3. Overall generation under frozen steps and guidance.
            phase = Phase("overall", tuple(rows), run.image_hw, run.latent_hw, run.config.steps)
            latents = generate_overall_rows(
                run, torch.stack(starts), [t.prompt for t in texts],
                [d.negative for d in drawings], images, hooks=run.hooks(phase),
            )  # fmt: skip
        return [
            Drawn(latents[k : k + 1], text.prompt, [r.image for r in results], masks,
                  generated, reused)
            for k, (text, (results, generated, reused), masks)
            in enumerate(zip(texts, found, placed_masks, strict=True))
        ]  # fmt: skip


def prefix(index: int, rows: int) -> str:
    """The trace prefix of image `index` of `rows` drawn together ("" for one image)."""
    return row_name(index, rows, "")


def box_jobs(drawing: Drawing, phase: BoxPhase, trace: str = "") -> list[BoxJob]:
    """What each box is drawn as: where on the latent grid, its tokens and cache key."""
    run, layout = drawing.run, drawing.layout
    space = run.backbone.token_space
    jobs: list[BoxJob] = []
    for index, (box, obj_seed) in enumerate(zip(layout.boxes, drawing.object_seeds, strict=True)):
        cells = to_cells(box.xyxy, run.image_hw, run.latent_hw)
        drawn_at = phase.method.draw_at(cells, run.latent_hw, run.config)
        tokens = box_tokens(space, layout.background, box.name, phase.tokens)
        if not tokens.guided or tokens.word is None:
            raise ValueError(
                f"the prompt for {box.name!r} is longer than the text encoder's "
                f"{space.max_tokens} tokens; shorten the background prompt"
            )
        key = BoxKey(
            drawing.model_id, box.name, (cells.w, cells.h), obj_seed, drawing.seed,
            layout.background, run.latent_hw, phase, run.backbone.sampler(),
        )  # fmt: skip
        jobs.append(
            BoxJob(box.name, obj_seed, drawn_at, tokens, key, index, layout.background,
                   drawing.background_noise, f"{trace}box{index}")
        )  # fmt: skip
    return jobs


def boxes(drawing: Drawing) -> tuple[list[BoxResult], int, int]:
    """Every box's own generation, from the cache where it holds it: (results in layout order,
    how many were drawn, how many reused)."""
    return boxes_many([drawing])[0]


def boxes_many(drawings: list[Drawing]) -> list[tuple[list[BoxResult], int, int]]:
    """`boxes` for several images at once: every object missing from the cache is drawn in one
    per-box phase (one per distinct negative prompt), an object two images share only once."""
    run, cache, n = drawings[0].run, drawings[0].cache, len(drawings)
    jobs = [
        box_jobs(d, BoxPhase.of(run.config, run.method, d.layout.negative), prefix(k, n))
        for k, d in enumerate(drawings)
    ]
    everything = [j for image in jobs for j in image]
    found = {j.key: cache.get(j.key) for j in everything} if cache is not None else {}
    missing = [{j.key: j for j in image if found.get(j.key) is None} for image in jobs]
    by_phase: dict[BoxPhase, dict[BoxKey, BoxJob]] = {}
    for image in missing:
        for key, job in image.items():
            by_phase.setdefault(key.phase, {}).setdefault(key, job)
    for phase, todo in by_phase.items():
        fresh = generate_boxes(run, list(todo.values()), phase, None, None, drawings[0].segmenter)
        for result in fresh:
            found[result.key] = result
            if cache is not None:
                cache.put(result)
    return [
        ([found[j.key] for j in image], len(gone), len(image) - len(gone))
        for image, gone in zip(jobs, missing, strict=True)
    ]


def place(run: Run, layout, results: list[BoxResult], trace: str = ""):
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
            run.emit(f"{trace}box{i}.mask", res.mask)
            run.emit(f"{trace}box{i}.offset", torch.tensor([off_x, off_y], dtype=torch.float32))
            run.emit(f"{trace}box{i}.shift", torch.tensor([dx, dy]))
            run.emit(f"{trace}box{i}.placed_mask", masks[-1])
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

__all__ = ["BOXES", "Boxes", "box_jobs", "boxes", "boxes_many", "place"]

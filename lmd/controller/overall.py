"""Overall generation from the composed latents (Lian et al. 2024, Sec. 3.3), and plain SD.

For the first `frozen_ratio` of the steps the latents inside the objects' masks are replaced
after each scheduler step by the composed ones; for the guided steps the energy of every
object plus attention transfer (L1 to each box's own attention at the same step, shifted to
its place) steers the cross-attention. LMD+ adds GLIGEN grounding for the first 40% of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmd.controller.compose import Composed
from lmd.controller.conditioning import Grounding
from lmd.controller.denoise import denoise
from lmd.controller.engine import Run
from lmd.controller.guidance import AttentionEnergy, Target, Transfer
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
    cfg = run.config
    text = run.encode([negative, prompt])
    grounding_inputs = None
    if run.method == "lmd+" and boxes:
        xyxy, names = grounding(cfg, objects, boxes)
        null = cfg.plus_guidance_grounding == "null"
        grounding_inputs = Grounding(
            run.gligen(xyxy, names, cfg=True),
            run.gligen(xyxy, names, cfg=False, null=null),
            cfg.gligen_steps,
        )
    objects = [o for o in objects if o.tokens.guided]
    guided = cfg.overall_guidance and bool(objects) and run.method != "sd"
    energy = overall_energy(run, objects, boxes, text.rows(slice(1, None)), grounding_inputs)
    frozen = targets = None
    if composed is not None:  # moved to the device once, not once per step
        frozen = composed.union.to(run.device)
        targets = composed.frames[: cfg.frozen_steps + 1].to(run.device, run.dtype)
    steps = denoise(
        run, latents, text, energy=energy if guided else None, grounding=grounding_inputs
    )
    for step in steps:
        run.emit("overall.latents", step.latents[0], step.index)
        if frozen is not None and step.index < cfg.frozen_steps:
            step.latents = torch.where(frozen, targets[step.index + 1], step.latents)
        run.progress("overall", step.index + 1, cfg.steps)
    return step.latents


def overall_energy(run: Run, objects, boxes, cond, grounding_inputs) -> AttentionEnergy | None:
    """The overall image's energy: every object in one row, plus attention transfer.

    Captured columns: every object's guided tokens in object order, then the word token of
    each object whose word is not one of them.
    """
    if not objects:
        return None
    positions, start = [], 0
    for o in objects:
        positions.append(start)
        start += len(o.tokens.guided)
    extra, word_column = [], {}
    for o, at in zip(objects, positions, strict=True):
        word = o.tokens.word
        if word is None:  # cut off by the encoder's length: no transfer
            continue
        if word in o.tokens.guided:
            column = at + o.tokens.guided.index(word)
        else:
            column = start + len(extra)
            extra.append(word)
        for b in o.boxes:
            word_column[b] = column
    targets = [[Target(o.tokens.guided, tuple(boxes[b].cells for b in o.boxes)) for o in objects]]
    transfer = Transfer(
        run, [o.boxes for o in objects], word_column, [b.cells for b in boxes],
        [b.attention for b in boxes],
    )  # fmt: skip
    return AttentionEnergy(
        run, cond, targets, ["overall"], grounding=grounding_inputs, extra=[extra],
        transfer=transfer,
    )  # fmt: skip


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

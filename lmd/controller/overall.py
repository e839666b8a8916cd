"""Overall generation from the composed latents (Lian et al. 2024, Sec. 3.3), and plain SD.

For the first `frozen_ratio` of the steps the latents inside the objects' masks are replaced
after each scheduler step by the composed ones; for the guided steps the energy of every
object plus attention transfer (L1 to each box's own attention at the same step, shifted to
its place) steers the cross-attention; the method's hooks may change the denoiser (LMD+:
GLIGEN's grounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmd.controller.captions import Tokens
from lmd.controller.compose import Composed
from lmd.controller.denoise import denoise
from lmd.controller.engine import Run
from lmd.controller.guidance import AttentionEnergy, Target, Transfer
from lmd.controller.noise import Cells
from lmd.controller.phase import Hooks


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
    hooks: Hooks | None = None,
) -> torch.Tensor:
    """Denoise `latents` [1, C, h, w] under the overall prompt; returns the final latents."""
    cfg = run.config
    both = run.encode([negative, prompt])
    uncond, text = both.rows(slice(0, 1)), both.rows(slice(1, None))
    objects = [o for o in objects if o.tokens.guided]
    energy = None  # built only when used: attention transfer moves every box's maps over
    if cfg.overall_guidance and objects:
        energy = overall_energy(run, objects, boxes, text, hooks)
    frozen = targets = None
    if composed is not None:  # moved to the device once, not once per step
        frozen = composed.union.to(run.device)
        targets = composed.frames[: cfg.frozen_steps + 1].to(run.device, run.dtype)
    steps = denoise(run, latents, text, uncond, energy=energy, hooks=hooks)
    for step in steps:
        run.emit("overall.latents", step.latents[0], step.index)
        if frozen is not None and step.index < cfg.frozen_steps:
            step.latents = torch.where(frozen, targets[step.index + 1], step.latents)
        run.progress("overall", step.index + 1, cfg.steps)
    return step.latents


def overall_energy(run: Run, objects, boxes, cond, hooks) -> AttentionEnergy:
    """The overall image's energy: every object in one row, plus attention transfer.

    Captured columns: every object's guided tokens in object order, then the word token of
    each object whose word is not one of them.
    """
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
        run, cond, targets, ["overall"], hooks=hooks, extra=[extra], transfer=transfer
    )

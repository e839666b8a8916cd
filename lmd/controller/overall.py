"""Overall generation from the composed latents (Lian et al. 2024, Sec. 3.3), and plain SD.

For the first `frozen_ratio` of the steps the latents inside the objects' masks are replaced
after each scheduler step by the composed ones; for the guided steps the energy of every
object plus attention transfer (L1 to each box's own attention at the same step, shifted to
its place) steers the cross-attention; the method's hooks may change the denoiser (LMD+:
GLIGEN's grounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lmd.controller.backbones import StepInputs, map_tensors
from lmd.controller.captions import Tokens
from lmd.controller.compose import Composed
from lmd.controller.denoise import denoise
from lmd.controller.engine import Run
from lmd.controller.guidance import AttentionEnergy, Target, Transfer
from lmd.controller.noise import Cells
from lmd.controller.phase import Hooks
from lmd.controller.trace import row_name


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


@dataclass
class OverallImage:
    """One image of the overall phase: its composition (None: no boxes) and guided objects."""

    composed: Composed | None = None
    objects: list[OverallObject] = field(default_factory=list)
    boxes: list[PlacedBox] = field(default_factory=list)


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
    image = OverallImage(composed, list(objects), list(boxes))
    return generate_overall_rows(run, latents, [prompt], [negative], [image], hooks=hooks)


def generate_overall_rows(
    run: Run,
    latents: torch.Tensor,
    prompts: list[str],
    negatives: list[str],
    images: list[OverallImage],
    *,
    hooks: Hooks | None = None,
) -> torch.Tensor:
    """Denoise `latents` [N, C, h, w], row k under `prompts[k]` with image k's frozen steps
    and guidance; returns the final latents. Several rows are guided row by row (each row's
    energy in its own forward), one denoiser call per step for all of them."""
    cfg = run.config
    n = len(prompts)
    both = run.encode([*negatives, *prompts])
    uncond, text = both.rows(slice(0, n)), both.rows(slice(n, None))
    energy = None  # built only when used: attention transfer moves every box's maps over
    if cfg.overall_guidance:
        energies = [
            overall_energy(run, guided, im.boxes, text.rows(slice(k, k + 1)),
                           hooks if n == 1 else RowHooks(hooks, k), row_name(k, n, "overall"))
            if (guided := [o for o in im.objects if o.tokens.guided]) else None
            for k, im in enumerate(images)
        ]  # fmt: skip
        if n == 1:
            energy = energies[0]
        elif any(e is not None for e in energies):
            energy = RowEnergies(energies)
    frozen = targets = None
    if any(im.composed is not None for im in images):  # moved to the device once
        frozen, targets = _frozen(run, latents, images)
    steps = denoise(run, latents, text, uncond, energy=energy, hooks=hooks)
    for step in steps:
        for k in range(n):
            run.emit(row_name(k, n, "overall.latents"), step.latents[k], step.index)
        if frozen is not None and step.index < cfg.frozen_steps:
            step.latents = torch.where(frozen, targets[step.index + 1], step.latents)
        run.progress("overall", step.index + 1, cfg.steps)
    return step.latents


def _frozen(run: Run, latents: torch.Tensor, images: list[OverallImage]):
    """Where each row keeps its composed latents [N, 1, h, w], and those latents per frozen
    step [frozen steps + 1, N, C, h, w] (a row without composition keeps nothing)."""
    count = run.config.frozen_steps + 1
    unions, frames = [], []
    for im in images:
        if im.composed is None:
            unions.append(torch.zeros(latents.shape[-2:], dtype=torch.bool))
            frames.append(torch.zeros(count, *latents.shape[1:], dtype=latents.dtype))
        else:
            unions.append(im.composed.union)
            frames.append(im.composed.frames[:count])
    frozen = torch.stack(unions)[:, None].to(run.device)
    targets = torch.stack(frames, dim=1).to(run.device, run.dtype)
    return frozen, targets


class RowHooks(Hooks):
    """`hooks` as one row's guidance forward sees them: every extra input cut to row `row`."""

    def __init__(self, hooks: Hooks | None, row: int):
        self.hooks, self.row = hooks, row

    def inputs(self, index: int) -> StepInputs | None:
        given = self.hooks.inputs(index) if self.hooks is not None else None
        if given is None:
            return None

        def pick(v: torch.Tensor) -> torch.Tensor:
            return v[self.row : self.row + 1]

        return StepInputs(
            map_tensors(given.cond, pick), map_tensors(given.uncond, pick),
            map_tensors(given.guidance, pick),
        )  # fmt: skip


class RowEnergies:
    """`energy(z, rows, t, step)` over rows that each have their own one-row energy (None:
    that row is not guided; its energy is 0, so it is never updated)."""

    def __init__(self, energies: list):
        self.energies = energies

    def __call__(self, z: torch.Tensor, rows: torch.Tensor, t, step: int) -> torch.Tensor:
        first = torch.zeros(1, dtype=torch.long, device=rows.device)
        out = []
        for j, r in enumerate(rows.tolist()):
            energy = self.energies[r]
            if energy is None:
                out.append((z[j] * 0).sum())  # keeps the graph the guidance loop differentiates
            else:
                out.append(energy(z[j : j + 1], first, t, step)[0])
        return torch.stack(out)


def overall_energy(run: Run, objects, boxes, cond, hooks, name: str = "overall") -> AttentionEnergy:
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
        run, cond, targets, [name], hooks=hooks, extra=[extra], transfer=transfer
    )

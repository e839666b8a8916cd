"""The one-pass flow: the whole image denoised once from the overall prompt, the method's
hooks changing the denoiser (plain SD: none; attention modulation, MIGC: their processors).
Also what every method draws for a layout without boxes. Several images (a story) are rows
of one batch: one denoising pass for all of them."""

from __future__ import annotations

import torch

from lmd.controller.denoise import denoise
from lmd.controller.flows.base import Drawing, Drawn, OverallText
from lmd.controller.noise import to_cells
from lmd.controller.phase import Phase
from lmd.controller.trace import row_name


class OnePass:
    """`draw(drawing)`: one denoising pass over the whole image (progress phase "overall");
    `draw_many(drawings)`: the same for several images, one row each."""

    def draw(self, drawing: Drawing) -> Drawn:
        return self.draw_many([drawing])[0]

    def draw_many(self, drawings: list[Drawing]) -> list[Drawn]:
        run = drawings[0].run
        grounded = run.method.grounded and any(d.layout.boxes for d in drawings)
        located = grounded or bool(run.extra)  # extra hooks read the objects' tokens too
        texts = [
            OverallText.of(run, d.layout, locate=located and bool(d.layout.boxes)) for d in drawings
        ]
        hooks = None
        if located:
            rows = tuple(
                t.row(run, d.layout, [to_cells(b.xyxy, run.image_hw, run.latent_hw)
                                      for b in d.layout.boxes])
                for t, d in zip(texts, drawings, strict=True)
            )  # fmt: skip
            phase = Phase("image", rows, run.image_hw, run.latent_hw, run.config.steps)
            hooks = run.hooks(phase, method=grounded)
        noise = torch.stack([d.background_noise for d in drawings])
        latents = one_pass_rows(
            run, noise, [t.prompt for t in texts], [d.negative for d in drawings], hooks
        )
        return [Drawn(latents[k : k + 1], t.prompt) for k, t in enumerate(texts)]


def one_pass(run, noise: torch.Tensor, prompt: str, negative: str, hooks=None) -> torch.Tensor:
    """Denoise `noise` [C, h, w] (unit variance) under `prompt`; -> final latents [1, C, h, w]."""
    return one_pass_rows(run, noise[None], [prompt], [negative], hooks)


def one_pass_rows(
    run, noise: torch.Tensor, prompts: list[str], negatives: list[str], hooks=None
) -> torch.Tensor:
    """Denoise `noise` [N, C, h, w] (unit variance), row k under `prompts[k]` and
    `negatives[k]`; -> final latents [N, C, h, w]."""
    n = len(prompts)
    both = run.encode([*negatives, *prompts])
    latents = noise * run.init_sigma
    total = run.config.steps
    for step in denoise(run, latents, both.rows(slice(n, None)), both.rows(slice(0, n)),
                        hooks=hooks):  # fmt: skip
        for k in range(n):
            run.emit(row_name(k, n, "overall.latents"), step.latents[k], step.index)
        run.progress("overall", step.index + 1, total)
    return step.latents


ONE_PASS = OnePass()

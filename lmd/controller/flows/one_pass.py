"""The one-pass flow: the whole image denoised once from the overall prompt, the method's
hooks changing the denoiser (plain SD: none; attention modulation, MIGC: their processors).
Also what every method draws for a layout without boxes."""

from __future__ import annotations

import torch

from lmd.controller.denoise import denoise
from lmd.controller.flows.base import Drawing, Drawn, OverallText
from lmd.controller.noise import to_cells
from lmd.controller.phase import Phase


class OnePass:
    """`draw(drawing)`: one denoising pass over the whole image (progress phase "overall")."""

    def draw(self, drawing: Drawing) -> Drawn:
        run, layout = drawing.run, drawing.layout
        grounded = run.method.grounded and bool(layout.boxes)
        text = OverallText.of(run, layout, locate=grounded)
        hooks = None
        if grounded:
            cells = [to_cells(b.xyxy, run.image_hw, run.latent_hw) for b in layout.boxes]
            row = text.row(run, layout, cells)
            phase = Phase("image", (row,), run.image_hw, run.latent_hw, run.config.steps)
            hooks = run.method.hooks(run, phase)
        latents = one_pass(run, drawing.background_noise, text.prompt, drawing.negative, hooks)
        return Drawn(latents, text.prompt)


def one_pass(run, noise: torch.Tensor, prompt: str, negative: str, hooks=None) -> torch.Tensor:
    """Denoise `noise` [C, h, w] (unit variance) under `prompt`; -> final latents [1, C, h, w]."""
    both = run.encode([negative, prompt])
    latents = (noise * run.init_sigma)[None]
    total = run.config.steps
    for step in denoise(run, latents, both.rows(slice(1, None)), both.rows(slice(0, 1)),
                        hooks=hooks):  # fmt: skip
        run.emit("overall.latents", step.latents[0], step.index)
        run.progress("overall", step.index + 1, total)
    return step.latents


ONE_PASS = OnePass()

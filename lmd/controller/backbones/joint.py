"""What the joint-attention (MM-DiT) backbones share: SD3 and FLUX (see `sd3.py`, `flux.py`).

Their denoiser is a transformer over one sequence of image tokens (the latent grid cut into
2x2 patches) and text tokens; each joint attention layer takes a softmax over all keys, text
and image. The energy needs SD's per-token maps: for each image query, a distribution over the
text tokens. `JointCapture` (`joint_capture.py`) reads the image-query x text-key block of the
attention the layer computes and renormalises it over the text columns.

They sample by flow matching: x_sigma = (1 - sigma) x_0 + sigma eps, from pure noise
(sigma = 1, so the initial noise is not scaled) with the Euler scheduler on the velocity the
model predicts; the guidance update's step is `flow_noise_level`.
"""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

import torch
from PIL import Image

from lmd.controller.backbones.base import Backbone, HookedLayers
from lmd.controller.backbones.dit_memory import boxes_per_batch
from lmd.controller.backbones.joint_capture import JointCapture, JointOrder


def flow_noise_level(sigma: float) -> float:
    """The energy update's step at flow-matching noise level `sigma`: sigma * sqrt(sigma^2 +
    (1 - sigma)^2).

    LMD steps by sqrt(1 - alpha_bar_t) on DDIM's variance-preserving latents z (Lian et al.
    2024, Eq. 3). The flow latent x = (1 - sigma) x_0 + sigma eps is that z scaled by
    s = sqrt((1 - sigma)^2 + sigma^2), at the same signal-to-noise ratio (sqrt(alpha_bar) =
    (1 - sigma) / s, sqrt(1 - alpha_bar) = sigma / s). The paper's update on z, carried to x
    (dE/dz = s dE/dx, dx = s dz), moves x by sigma * s * dE/dx: the same step as on SD at the
    same point of the diffusion, so `loss_scale` and the threshold keep their meaning. It is 1
    at pure noise, as DDIM's, and tends to sigma at the end.
    """
    return sigma * ((1 - sigma) ** 2 + sigma**2) ** 0.5


class JointBackbone(Backbone):
    """An MM-DiT (`pipe.transformer`) with flow matching: the parts SD3 and FLUX share.

    Subclasses give `text_first`, `text_tokens` (the conditioning's text length), `patch`
    (latent cells per image token side) and `guided_blocks(n)` (which of the n `blocks()` the
    energy reads; the last is the mask layer), plus text encoding and the denoiser call.
    """

    text_first: ClassVar[bool] = False
    joint = True
    denoiser_label = "transformer"
    gligen = False  # no public GLIGEN weights for a transformer base model

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.transformer

    @property
    def latent_channels(self) -> int:
        return self.pipe.vae.config.latent_channels

    @property
    def patch(self) -> int:
        raise NotImplementedError

    @property
    def text_tokens(self) -> int:
        raise NotImplementedError

    @property
    def size_multiple(self) -> int:
        return self.vae_scale * self.patch

    def attention_hw(self, pixels: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = self.coarsest_grid(latent_hw)
        if h * w != pixels:
            raise ValueError(f"cannot place {pixels} attention positions on a {latent_hw} latent")
        return h, w

    def coarsest_grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """Every layer sees the image tokens: the latent grid in patches."""
        return latent_hw[0] // self.patch, latent_hw[1] // self.patch

    # Sampling (flow matching).
    max_shift: ClassVar[float] = 1.15
    """The pipeline's `max_shift` where the scheduler config names none."""

    def flow_sigmas(self, steps: int):
        """The sigmas the pipeline gives its scheduler (None: the scheduler's own)."""
        return None

    def scheduler(self, steps: int, latent_hw: tuple[int, int] | None = None):
        """The pipeline's flow-matching scheduler set as its pipeline sets it: its sigmas, and
        the shift for the image's token count (`mu`; a scheduler without dynamic shifting
        ignores it) at `latent_hw` (default: the native size)."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        scheduler = type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)
        c = scheduler.config
        h, w = self.coarsest_grid(latent_hw or self.latent_hw(self.native_size))
        mu = calculate_shift(
            h * w, c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
            c.get("base_shift", 0.5), c.get("max_shift", self.max_shift),
        )  # fmt: skip
        scheduler.set_timesteps(steps, device=self.device, sigmas=self.flow_sigmas(steps), mu=mu)
        return scheduler

    def init_sigma(self, scheduler) -> float:
        return 1.0  # x_1 is the noise itself

    def model_input(self, scheduler, latents: torch.Tensor, t) -> torch.Tensor:
        return latents

    def noise_level(self, scheduler, index: int, t, rule: str = "scaling") -> float:
        """`flow_noise_level` (one rule: the paper's code has no flow-matching sampler)."""
        return flow_noise_level(float(scheduler.sigmas[index]))

    # Attention.
    def blocks(self) -> list[str]:
        """The joint attention layers with a text stream (the transformer's
        `transformer_blocks`: SD3's joint blocks, FLUX's double-stream blocks)."""
        return [
            f"transformer_blocks.{i}.attn" for i, _ in enumerate(self.denoiser.transformer_blocks)
        ]

    @classmethod
    def guided_blocks(cls, n: int) -> range:
        raise NotImplementedError

    @cached_property
    def layers(self) -> HookedLayers:
        blocks = self.blocks()
        guided = [blocks[i] for i in self.guided_blocks(len(blocks))]
        if not guided:
            raise ValueError("the transformer has no joint attention layers to guide")
        return HookedLayers(guidance=guided, mask=guided[-1])

    @property
    def order(self) -> JointOrder:
        return JointOrder(self.text_first, self.text_tokens)

    def capture_processor(self, store, name: str, inner):
        return JointCapture(store, name, inner, self.order)

    def attention_modules(self, kind: str) -> dict[str, torch.nn.Module]:
        """ "cross": every joint attention layer, the ones whose image queries see the text
        (SD3's joint blocks, FLUX's double- and single-stream blocks: `.attn`); "self": the
        image-only attention layers (SD3.5's `.attn2`; none in FLUX or SD3.0)."""
        if kind not in ("cross", "self"):
            raise ValueError(f"attention kind must be 'cross' or 'self' but is {kind!r}")
        suffix = ".attn" if kind == "cross" else ".attn2"
        return {
            name: module
            for name, module in self.denoiser.named_modules()
            if name.endswith(suffix) and hasattr(module, "processor")
        }

    # Images.
    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """Latents to images with the VAE (its scale and shift), one row at a time."""
        vae = self.pipe.vae
        shift = vae.config.shift_factor or 0.0
        images: list[Image.Image] = []
        with torch.no_grad():
            for row in latents.split(1):
                x = vae.decode(row.to(vae.dtype) / vae.config.scaling_factor + shift)[0]
                images += self.pipe.image_processor.postprocess(x.float(), output_type="pil")
        return images

    # Memory.
    def boxes_per_batch(self, layers: HookedLayers, latent_hw: tuple[int, int]) -> int:
        h, w = self.coarsest_grid(latent_hw)
        stop = self.blocks().index(layers.guidance[-1])
        return boxes_per_batch(
            self.denoiser, stop + 1, h * w, self.text_tokens, self.dtype, self.device
        )

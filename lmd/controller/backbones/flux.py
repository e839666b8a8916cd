"""FLUX.1: a `FluxTransformer2DModel` with a CLIP text encoder (pooled) and a T5 encoder.

Text becomes conditioning through the pipeline's own `encode_prompt`: T5's `text_tokens`
hidden states are the sequence (objects are located in them; T5 has no beginning-of-text
token, so a prompt's first token is at 0), CLIP's pooled embedding the added
`pooled_projections`. The latents (16 channels) are packed 2x2 into 64-channel tokens inside
this backbone only (`pack`, `unpack`: everything above it sees [rows, C, h, w]), with their
(row, column) positions for the rotary embedding; the text comes first in the joint sequence.
Double-stream blocks keep text and image in their own streams around one joint attention;
single-stream blocks then run them as one sequence.

FLUX.1 [dev] and [schnell] are guidance-distilled: there is no unconditional batch. [dev]
takes the guidance scale as an input (`guidance_scale`, the `FluxPipeline`'s default 3.5);
[schnell] takes none. The config's `cfg_scale` and the negative prompt do not apply.
"""

from __future__ import annotations

import torch

from lmd.controller.backbones.base import Backbone, Call, StepInputs
from lmd.controller.backbones.joint import JointBackbone
from lmd.controller.captions import TokenSpace
from lmd.controller.conditioning import Conditioning

T5_TOKENS = 512  # FluxPipeline's `max_sequence_length`
GUIDANCE = 3.5  # FluxPipeline's default `guidance_scale` (FLUX.1 [dev]'s distilled guidance)


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[rows, C, h, w] -> [rows, (h/2)(w/2), 4C]: each 2x2 patch one token, row-major."""
    rows, c, h, w = latents.shape
    x = latents.view(rows, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(rows, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """The inverse of `pack` for latents of `hw` cells."""
    rows, _, channels = tokens.shape
    h, w = hw
    x = tokens.view(rows, h // 2, w // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(rows, channels // 4, h, w)


def image_ids(hw: tuple[int, int], device, dtype) -> torch.Tensor:
    """Each packed token's rotary position (0, row, column), [(h/2)(w/2), 3]."""
    h, w = hw[0] // 2, hw[1] // 2
    ids = torch.zeros(h, w, 3)
    ids[..., 1] += torch.arange(h)[:, None]
    ids[..., 2] += torch.arange(w)[None, :]
    return ids.reshape(h * w, 3).to(device=device, dtype=dtype)


class FLUX(JointBackbone):
    """FLUX.1 [dev] / [schnell]: joint attention of the double-stream blocks, text first.

    Guided layers: the last quarter of the double-stream blocks (FLUX.1: blocks 15-18 of 19),
    the layers ConceptAttention (Helbling et al. 2025) reads FLUX's text-image attention from
    by default; the last is the mask layer. Text still has its own stream there (its own
    projections), as SD's cross-attention keys. The guidance forward stops after the last
    double-stream block: it runs 19 of FLUX.1's 57 blocks and skips the 38 single-stream
    blocks, about two thirds of the transformer's compute and activations, forwards and
    backwards. By `dit_memory.py`'s estimate a guided row of FLUX.1 at 1024 px (4096 image
    and 512 text tokens) in bf16 keeps 15 GiB instead of 45 GiB for the whole transformer.
    """

    name = "flux"
    label = "FLUX"
    text_first = True
    max_shift = 1.15  # FluxPipeline's default
    guidance_scale: float = GUIDANCE
    """The distilled guidance input of a model with a guidance embedding (FLUX.1 [dev])."""

    @property
    def native_size(self) -> tuple[int, int]:
        """The VAE's training size (FLUX.1: 1024 px); FLUX keeps no size in its transformer."""
        size = self.pipe.vae.config.sample_size
        h, w = (size, size) if isinstance(size, int) else size
        return h, w

    @property
    def patch(self) -> int:
        return 2  # the 2x2 packing

    @property
    def text_tokens(self) -> int:
        return min(T5_TOKENS, self.pipe.tokenizer_2.model_max_length)

    @property
    def tokenizer(self):
        return self.pipe.tokenizer_2

    @property
    def token_space(self) -> TokenSpace:
        return TokenSpace(self.pipe.tokenizer_2, self.text_tokens, 0)

    def flow_sigmas(self, steps: int):
        """`FluxPipeline`'s sigmas, 1 ... 1/steps (unless the scheduler makes its own)."""
        import numpy as np

        if self.pipe.scheduler.config.get("use_flow_sigmas"):
            return None
        return np.linspace(1.0, 1 / steps, steps)

    @classmethod
    def guided_blocks(cls, n: int) -> range:
        return range(n - max(1, n // 4), n)

    def encode(self, texts: list[str], image_hw: tuple[int, int]) -> Conditioning:
        with torch.no_grad():
            embeds, pooled, _ = self.pipe.encode_prompt(
                texts, texts, device=self.device, num_images_per_prompt=1,
                max_sequence_length=self.text_tokens,
            )  # fmt: skip
        return Conditioning(embeds.to(self.dtype), {"pooled_projections": pooled.to(self.dtype)})

    def forward(self, latents: torch.Tensor, t, text: Conditioning, kwargs: dict) -> torch.Tensor:
        rows, hw = latents.shape[0], latents.shape[-2:]
        transformer = self.pipe.transformer
        guidance = None
        if transformer.config.guidance_embeds:
            guidance = torch.full([rows], self.guidance_scale, device=latents.device)
        timestep = t.expand(rows).to(latents.dtype)
        txt_ids = text.embeds.new_zeros(text.embeds.shape[1], 3)
        out = transformer(
            hidden_states=pack(latents), timestep=timestep / 1000, guidance=guidance,
            encoder_hidden_states=text.embeds, txt_ids=txt_ids,
            img_ids=image_ids(hw, latents.device, latents.dtype), return_dict=False,
            **text.added, **kwargs,
        )[0]  # fmt: skip
        return unpack(out, hw)

    def predict(
        self,
        call: Call,
        latents: torch.Tensor,
        t,
        text: Conditioning,
        negative: Conditioning,
        cfg_scale: float,
        scheduler,
        inputs: StepInputs | None = None,
    ) -> torch.Tensor:
        """One transformer call on the conditional rows (guidance-distilled: no CFG batch)."""
        kwargs = inputs.cond if inputs is not None else {}
        with torch.no_grad():
            return call(latents, t, text, kwargs, slice(None))


def detect(pipe) -> type[Backbone] | None:
    """FLUX when the pipeline's denoiser is a `FluxTransformer2DModel`."""
    from diffusers import FluxTransformer2DModel

    return FLUX if isinstance(getattr(pipe, "transformer", None), FluxTransformer2DModel) else None

"""SD3 / SD3.5: an `SD3Transformer2DModel` (MM-DiT) with three text encoders.

Text becomes conditioning through the pipeline's own `encode_prompt`: CLIP-L's and CLIP-bigG's
penultimate hidden states side by side (77 tokens, zero-padded to T5's width), then T5's
`text_tokens` - 77 tokens, as one sequence; the two CLIP pooled embeddings are the added
`pooled_projections`. Objects are located in T5's tokens (the encoder the model reads the
prompt's words from at length), which sit after CLIP's 77. The latents (16 channels) are cut
into 2x2 patches by the model; in each joint attention layer the image tokens come first and
the text after. Flow matching with the pipeline's Euler scheduler (its shift), and
classifier-free guidance on the batch [uncond, cond] as on SD.
"""

from __future__ import annotations

import torch

from lmd.controller.backbones.base import Backbone, Call, StepInputs, merge_inputs
from lmd.controller.backbones.joint import JointBackbone
from lmd.controller.captions import TokenSpace
from lmd.controller.conditioning import Conditioning

T5_TOKENS = 256  # StableDiffusion3Pipeline's `max_sequence_length`


class SD3(JointBackbone):
    """SD3 and SD3.5 (Medium, Large): the joint blocks' attention, image tokens first.

    Guided layers. Every block of SD3 is a joint block at one resolution (the latent in 2x2
    patches: 64x64 at 1024 px), so the choice is of depth: the second quarter of the stack,
    blocks [n/4, n/2) (SD3.5 Medium: 6-11 of 24; Large: 9-18 of 38), past the first blocks,
    which see the prompt before the image has formed, and early enough to stop: the guidance
    forward stops after block n/2 - 1 and runs half the transformer, forwards and backwards.
    By `dit_memory.py`'s estimate a guided row of SD3.5 Medium at 1024 px in fp16 keeps 4.7
    GiB instead of 9.2 GiB for the whole stack. The mask layer is the last guided block. This rule
    is a choice by cost, not yet measured against the real weights; a subclass changes it by
    overriding `guided_blocks`.
    """

    name = "sd3"
    label = "SD3"
    text_first = False
    max_shift = 1.16  # StableDiffusion3Pipeline's default

    @property
    def native_size(self) -> tuple[int, int]:
        size = self.pipe.transformer.config.sample_size * self.vae_scale
        return size, size

    @property
    def patch(self) -> int:
        return self.pipe.transformer.config.patch_size

    @property
    def clip_tokens(self) -> int:
        return self.pipe.tokenizer_max_length

    @property
    def t5_tokens(self) -> int:
        tokenizer = self.pipe.tokenizer_3
        limit = tokenizer.model_max_length if tokenizer is not None else T5_TOKENS
        return min(T5_TOKENS, limit)

    @property
    def text_tokens(self) -> int:
        return self.clip_tokens + self.t5_tokens

    @property
    def tokenizer(self):
        """T5's tokenizer (CLIP-L's when the pipeline was loaded without T5)."""
        return self.token_space.tokenizer

    @property
    def token_space(self) -> TokenSpace:
        if self.pipe.text_encoder_3 is None:  # T5's part of the sequence is zeros
            return TokenSpace(self.pipe.tokenizer, self.clip_tokens, 0)
        return TokenSpace(self.pipe.tokenizer_3, self.t5_tokens, self.clip_tokens)

    @classmethod
    def guided_blocks(cls, n: int) -> range:
        return range(n // 4, max(n // 2, n // 4 + 1))

    def encode(self, texts: list[str], image_hw: tuple[int, int]) -> Conditioning:
        with torch.no_grad():
            embeds, _, pooled, _ = self.pipe.encode_prompt(
                texts, texts, texts, device=self.device, num_images_per_prompt=1,
                do_classifier_free_guidance=False, max_sequence_length=self.t5_tokens,
            )  # fmt: skip
        return Conditioning(embeds.to(self.dtype), {"pooled_projections": pooled.to(self.dtype)})

    def forward(self, latents: torch.Tensor, t, text: Conditioning, kwargs: dict) -> torch.Tensor:
        return self.pipe.transformer(
            hidden_states=latents, timestep=t.expand(latents.shape[0]),
            encoder_hidden_states=text.embeds, return_dict=False, **text.added, **kwargs,
        )[0]  # fmt: skip

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
        """One transformer call on [uncond rows, cond rows]; v_u + s * (v_c - v_u)."""
        rows = latents.shape[0]
        both = Conditioning.cat([negative, text])
        kwargs = merge_inputs([inputs.uncond, inputs.cond]) if inputs is not None else {}
        with torch.no_grad():
            out = call(torch.cat([latents, latents]), t, both, kwargs, slice(rows, None))
        uncond, cond = out.chunk(2)
        return uncond + cfg_scale * (cond - uncond)


def detect(pipe) -> type[Backbone] | None:
    """SD3 when the pipeline's denoiser is an `SD3Transformer2DModel`."""
    from diffusers import SD3Transformer2DModel

    return SD3 if isinstance(getattr(pipe, "transformer", None), SD3Transformer2DModel) else None

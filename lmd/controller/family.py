"""Model families (SD 1.x, SD 2.x, SDXL): what differs between them, read off a loaded pipeline.

A family says how text becomes UNet conditioning (SDXL: two encoders, pooled embeddings and
size ids per batch row), which cross-attention layers take guidance and which one gives the
mask attention, and whether GLIGEN weights exist for it. Sizes come from the UNet and VAE
configs, the prediction type (SD 2.x at 768 predicts v) from the scheduler's config: the
scheduler turns the model output into the next latents, and the guidance update moves the
latents themselves, so nothing else depends on it. Everything else is family-agnostic.

    family = family_of(pipe)  # by components and UNet config, never by the model's name
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmd.controller.attention import HookedLayers, find_hooked_layers
from lmd.controller.conditioning import Conditioning


@dataclass(frozen=True)
class Family:
    """SD 1.x: one CLIP text encoder; guidance on the mid block and the first up block."""

    name: str = "sd1"
    label: str = "SD 1.x"
    gligen: bool = True  # public GLIGEN weights exist (gligen/diffusers-generation-text-box)
    up_stacks: int | None = None  # transformer stacks of the first up block guided (None: all)

    def hooked_layers(self, unet) -> HookedLayers:
        return find_hooked_layers(unet, up_stacks=self.up_stacks)

    def encode(self, pipe, texts: list[str], image_hw, device, dtype) -> Conditioning:
        """Text conditioning of one row per text, as the pipeline's own `encode_prompt`."""
        embeds = pipe.encode_prompt(texts, device, 1, False)[0]
        return Conditioning(embeds.to(dtype))


@dataclass(frozen=True)
class SDXL(Family):
    """SDXL: two text encoders (hidden states concatenated), the second's pooled embedding and
    the size ids (original size, crop corner, target size) as the UNet's added conditioning.

    Guided layers. SD 1.x at 512 px guides 1/64 (mid block, 8x8) and 1/32 (first up block,
    16x16) of the image. SDXL has no 1/64 level: its lowest, 1/32 (32x32 at 1024 px), holds
    the mid block and the first up block, each stack 10 transformer blocks deep (the mid
    block 1 stack, the first up block 3), then 1/16 (64x64) with 2-deep stacks. Guiding the
    mid block and the first stack of the first up block keeps SD 1.x's "mid + first up" at
    the resolution where the layout forms, with 20 layers for the energy to average over. It
    lets the guidance forward stop after 1/3 of the first up block: it runs 44 of the UNet's
    70 transformer blocks (all 64 up to the end of the first up block otherwise), skipping
    the other two 10-deep stacks and the whole 1/16 and 1/8 levels, forwards and backwards;
    by `memory.py`'s estimate a guided row keeps 3.5 GB at 1024 px in fp16 instead of 5.0.
    The 1/16 level would need those 20 blocks run first and 4x the attention map per head.
    The mask layer is the last layer of the last down block, 1/32 as in SD 1.x.
    """

    name: str = "sdxl"
    label: str = "SDXL"
    gligen: bool = False  # no public GLIGEN weights for SDXL
    up_stacks: int | None = 1

    def encode(self, pipe, texts: list[str], image_hw, device, dtype) -> Conditioning:
        embeds, _, pooled, _ = pipe.encode_prompt(
            texts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        h, w = image_hw
        # Original size, crop top-left, target size (SDXL's micro-conditioning): no crop.
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], device=device, dtype=dtype)
        added = {"text_embeds": pooled.to(dtype), "time_ids": time_ids.expand(len(texts), -1)}
        return Conditioning(embeds.to(dtype), added)


SD1 = Family()
SD2 = Family(name="sd2", label="SD 2.x")  # OpenCLIP text encoder; v-prediction at 768 px
SDXL_FAMILY = SDXL()
FAMILIES = (SD1, SD2, SDXL_FAMILY)


def family_of(pipe) -> Family:
    """The family of a loaded pipeline, from its components and UNet config.

    SDXL: a second text encoder and the UNet's "text_time" added embedding. SD 2.x: linear
    projections in the UNet's transformers (SD 1.x UNets use 1x1 convolutions). Else SD 1.x.
    """
    unet = pipe.unet.config
    if getattr(pipe, "text_encoder_2", None) is not None or (
        getattr(unet, "addition_embed_type", None) == "text_time"
    ):
        if getattr(pipe, "text_encoder_2", None) is None:
            raise ValueError(
                "the pipeline's UNet is SDXL-shaped but it has no `text_encoder_2`; load the "
                "whole SDXL pipeline"
            )
        return SDXL_FAMILY
    if getattr(unet, "use_linear_projection", False):
        return SD2
    return SD1


__all__ = ["FAMILIES", "SD1", "SD2", "SDXL_FAMILY", "Family", "family_of"]

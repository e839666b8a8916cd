"""UNet backbones: SD 1.x, SD 2.x and SDXL (a `UNet2DConditionModel`, CLIP text, a VAE).

Text becomes UNet conditioning through the pipeline's own `encode_prompt` (SDXL: both encoders,
the second's pooled embedding and the size ids per batch row as added conditioning). Sizes
come from the UNet and VAE configs, the prediction type (SD 2.x at 768 predicts v) from the
scheduler's config: the scheduler turns the model output into the next latents, and the
guidance update moves the latents themselves, so nothing else depends on it. Classifier-free
guidance batches are ordered [uncond, cond], here and nowhere else.

Hooked layers are chosen by position in the UNet, so any SD-shaped UNet works:
- guidance layers: every cross-attention layer of the mid block and of the first up block
  that has cross-attention (SD 1.x at 512 px: 8x8 and 16x16), or of its first stacks only
  (SDXL, see `SDXL`);
- the mask layer: the last cross-attention layer of the last down block that has
  cross-attention (SD 1.x at 512 px: `down_blocks.2.attentions.1`, 16x16).
"""

from __future__ import annotations

from functools import cached_property

import torch
from PIL import Image

from lmd.controller.backbones.base import Backbone, Call, HookedLayers, StepInputs, merge_inputs
from lmd.controller.backbones.unet_memory import boxes_per_batch
from lmd.controller.conditioning import Conditioning
from lmd.controller.energy import noise_level


def find_hooked_layers(unet, up_stacks: int | None = None) -> HookedLayers:
    """Pick the guidance and mask layers of an SD-shaped UNet by position; `up_stacks` limits
    the first up block's guided transformer stacks to its first ones (None: all)."""

    def cross_attn(prefix: str, block, stacks: int | None = None) -> list[str]:
        names = []
        for i, transformer in enumerate((getattr(block, "attentions", None) or [])[:stacks]):
            for j, _ in enumerate(getattr(transformer, "transformer_blocks", [])):
                names.append(f"{prefix}.attentions.{i}.transformer_blocks.{j}.attn2")
        return names

    mid = cross_attn("mid_block", unet.mid_block) if unet.mid_block is not None else []
    ups = [cross_attn(f"up_blocks.{i}", b, up_stacks) for i, b in enumerate(unet.up_blocks)]
    first_up = next((names for names in ups if names), [])
    downs = [cross_attn(f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
    last_down = next((names for names in reversed(downs) if names), [])
    if not (mid and first_up and last_down):
        raise ValueError(
            "`unet` is not SD-shaped: it needs cross-attention in its mid block, an up block "
            "and a down block"
        )
    return HookedLayers(guidance=mid + first_up, mask=last_down[-1])


def is_gated(unet) -> bool:
    """Whether the UNet carries GLIGEN gated self-attention (`attention_type="gated"`)."""
    from diffusers.models.attention import GatedSelfAttentionDense

    return any(isinstance(m, GatedSelfAttentionDense) for m in unet.modules())


def grid_at(pixels: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """Height and width of a UNet attention map with `pixels` positions (each level halves
    the latent grid, rounding up)."""
    h, w = latent_hw
    if pixels < 1:
        raise ValueError(f"an attention map needs at least one position, got {pixels}")
    while h * w > pixels and (h, w) != (1, 1):
        h, w = (h + 1) // 2, (w + 1) // 2
    if h * w != pixels:
        raise ValueError(f"cannot place {pixels} attention positions on a {latent_hw} latent")
    return h, w


class SD1(Backbone):
    """SD 1.x: one CLIP text encoder; guidance on the mid block and the first up block."""

    name = "sd1"
    label = "SD 1.x"
    gligen = True  # public GLIGEN weights exist (gligen/diffusers-generation-text-box)
    up_stacks: int | None = None  # transformer stacks of the first up block guided (None: all)

    def prepare(self) -> None:
        """DDIM from the pipeline's own scheduler config: the sampler of the paper's code."""
        from diffusers import DDIMScheduler

        self.pipe.scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.unet

    @property
    def latent_channels(self) -> int:
        return self.pipe.unet.config.in_channels

    @property
    def native_size(self) -> tuple[int, int]:
        size = self.pipe.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else size
        return h * self.vae_scale, w * self.vae_scale

    def attention_hw(self, pixels: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
        return grid_at(pixels, latent_hw)

    def coarsest_grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = latent_hw
        for block in self.pipe.unet.down_blocks:
            if getattr(block, "downsamplers", None):
                h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    @property
    def tokenizer(self):
        return self.pipe.tokenizer

    @classmethod
    def hooked_layers(cls, unet) -> HookedLayers:
        return find_hooked_layers(unet, up_stacks=cls.up_stacks)

    @cached_property
    def layers(self) -> HookedLayers:
        return self.hooked_layers(self.pipe.unet)

    def attention_modules(self, kind: str) -> dict[str, torch.nn.Module]:
        suffix = {"cross": ".attn2", "self": ".attn1"}[kind]
        return {
            name: module
            for name, module in self.pipe.unet.named_modules()
            if name.endswith(suffix) and ".transformer_blocks." in name
        }

    def decoder_attention(self, kind: str) -> dict[str, torch.nn.Module]:
        return {k: v for k, v in self.attention_modules(kind).items() if k.startswith("up_blocks.")}

    def encode(self, texts: list[str], image_hw: tuple[int, int]) -> Conditioning:
        """Text conditioning of one row per text, as the pipeline's own `encode_prompt`."""
        with torch.no_grad():
            embeds = self.pipe.encode_prompt(texts, self.device, 1, False)[0]
        return Conditioning(embeds.to(self.dtype))

    def pooled(self, texts: list[str]) -> torch.Tensor:
        tok = self.pipe.tokenizer
        inputs = tok(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.no_grad():
            return self.pipe.text_encoder(**inputs).pooler_output.to(self.dtype)

    def noise_level(self, scheduler, index: int, t, rule: str = "scaling") -> float:
        return noise_level(scheduler, index, t, rule)

    def forward(self, latents: torch.Tensor, t, text: Conditioning, kwargs: dict) -> torch.Tensor:
        if text.added:
            kwargs = {**kwargs, "added_cond_kwargs": text.added}
        return self.pipe.unet(latents, t, encoder_hidden_states=text.embeds, **kwargs)[0]

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
        """One UNet call on the batch [uncond rows, cond rows]; eps_u + s * (eps_c - eps_u)."""
        rows = latents.shape[0]
        doubled = self.model_input(scheduler, torch.cat([latents, latents]), t)
        both = Conditioning.cat([negative, text])
        kwargs = merge_inputs([inputs.uncond, inputs.cond]) if inputs is not None else {}
        with torch.no_grad():
            out = call(doubled, t, both, kwargs, slice(rows, None))
        uncond, cond = out.chunk(2)
        return uncond + cfg_scale * (cond - uncond)

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """Latents to images with the pipeline's VAE and image processor, one row at a time
        (a VAE decode at 1024 px peaks at several GB per image: the per-box pictures of an
        SDXL render would otherwise need them all at once). A VAE that overflows in fp16
        (`force_upcast`, SDXL's) decodes in fp32, as the SDXL pipeline does."""
        vae = self.pipe.vae
        upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        dtype = vae.dtype
        images: list[Image.Image] = []
        try:
            if upcast:
                vae.to(torch.float32)
            with torch.no_grad():
                for row in latents.split(1):
                    x = vae.decode(row.to(vae.dtype) / vae.config.scaling_factor)[0]
                    images += self.pipe.image_processor.postprocess(x.float(), output_type="pil")
        finally:
            if upcast:
                vae.to(dtype)
        return images

    def boxes_per_batch(self, layers: HookedLayers, latent_hw: tuple[int, int]) -> int:
        return boxes_per_batch(self.pipe.unet, layers.guidance, latent_hw, self.dtype, self.device)

    def has_gligen(self) -> bool:
        return is_gated(self.pipe.unet)


class SD2(SD1):
    """SD 2.x: an OpenCLIP text encoder, linear projections in the UNet's transformers,
    v-prediction at 768 px (the scheduler's business); otherwise SD 1.x."""

    name = "sd2"
    label = "SD 2.x"
    gligen = False  # no public GLIGEN weights for SD 2.x


class SDXL(SD1):
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
    by `unet_memory.py`'s estimate a guided row keeps 3.5 GB at 1024 px in fp16 instead of
    5.0. The 1/16 level would need those 20 blocks run first and 4x the attention map per
    head. The mask layer is the last layer of the last down block, 1/32 as in SD 1.x.
    """

    name = "sdxl"
    label = "SDXL"
    gligen = False  # no public GLIGEN weights for SDXL
    up_stacks = 1

    def encode(self, texts: list[str], image_hw: tuple[int, int]) -> Conditioning:
        with torch.no_grad():
            embeds, _, pooled, _ = self.pipe.encode_prompt(
                texts, device=self.device, num_images_per_prompt=1,
                do_classifier_free_guidance=False,
            )  # fmt: skip
        h, w = image_hw
        # Original size, crop top-left, target size (SDXL's micro-conditioning): no crop.
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], device=self.device, dtype=self.dtype)
        added = {"text_embeds": pooled.to(self.dtype), "time_ids": time_ids.expand(len(texts), -1)}
        return Conditioning(embeds.to(self.dtype), added)


def detect(pipe) -> type[Backbone] | None:
    """SDXL: a second text encoder and the UNet's "text_time" added embedding. SD 2.x: linear
    projections in the UNet's transformers (SD 1.x UNets use 1x1 convolutions). Else SD 1.x.
    None when the pipeline has no UNet."""
    unet = getattr(pipe, "unet", None)
    if unet is None:
        return None
    config = unet.config
    if getattr(pipe, "text_encoder_2", None) is not None or (
        getattr(config, "addition_embed_type", None) == "text_time"
    ):
        if getattr(pipe, "text_encoder_2", None) is None:
            raise ValueError(
                "the pipeline's UNet is SDXL-shaped but it has no `text_encoder_2`; load the "
                "whole SDXL pipeline"
            )
        return SDXL
    if getattr(config, "use_linear_projection", False):
        return SD2
    return SD1

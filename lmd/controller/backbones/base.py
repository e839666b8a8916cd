"""`Backbone`: everything that differs between base models, behind one seam.

A backbone wraps one loaded diffusers pipeline and answers, for the flows and methods above it:

- geometry: the VAE's scale, the native size, the latent channels, each attention layer's grid;
- text: prompts to the denoiser's conditioning (`encode`), the tokenizer the model grounds on
  and where its tokens sit in the conditioning sequence (`token_space`);
- sampling: the scheduler the loop runs (`prepare` sets it on a loaded pipeline; `scheduler`
  gives a fresh one for a latent size), the model input, classifier-free guidance (`predict`:
  how the conditional and unconditional rows are batched, or whether there are any, is the
  backbone's business), the scheduler step and the noise level of the guidance update;
- attention: the cross-attention layers the energy reads (`layers.guidance`) and the mask
  layer, every cross- and self-attention layer a method may change, how to capture them;
- decoding, and the memory one guided row keeps.

Latents above the backbone are always [rows, C, h, w] on the latent grid (a backbone that
packs them, as FLUX does, packs inside). Nothing above the backbone names the denoiser's
modules (`unet`, `attn2`, `down_blocks`), its batch layout or a tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image

from lmd.controller.attention import CaptureProcessor, HookedLayers
from lmd.controller.captions import TokenSpace
from lmd.controller.conditioning import Conditioning

Call = Callable[..., torch.Tensor | None]
"""A counted denoiser call: `call(model_input, t, text, kwargs, cond_rows)` -> output or None
(None when the attention capture ended the forward early)."""


@dataclass
class StepInputs:
    """A method's extra denoiser inputs for one step (keyword arguments of the denoiser call),
    for the conditional rows, the unconditional rows and a guidance forward."""

    cond: dict[str, Any]
    uncond: dict[str, Any]
    guidance: dict[str, Any]


class Backbone:
    """A loaded pipeline as the controller sees it (see the module docstring)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    gligen: ClassVar[bool] = False  # public GLIGEN weights exist for this family
    denoiser_label: ClassVar[str] = "UNet"  # what people call the denoiser, in messages
    joint: ClassVar[bool] = False
    """Text and image attend in one softmax (SD3, FLUX: `order` says how the sequence is laid
    out); else separate self- and cross-attention layers (the UNets)."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    def prepare(self) -> None:
        """Set the loaded pipeline up for lmd's loop (its scheduler); called once on load."""

    # Identity and placement.
    @property
    def denoiser(self) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    def model_id(self) -> str:
        """A name for the loaded weights when the caller gives none (cache keys)."""
        return f"{type(self.denoiser).__name__}@{id(self.pipe):x}"

    # Geometry.
    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """Image sizes must be multiples of this."""
        return self.vae_scale

    @property
    def latent_channels(self) -> int:
        raise NotImplementedError

    @property
    def native_size(self) -> tuple[int, int]:
        """(height, width) in pixels the model was trained at."""
        raise NotImplementedError

    def latent_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        return image_hw[0] // self.vae_scale, image_hw[1] // self.vae_scale

    def attention_hw(self, pixels: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """Height and width of an attention layer's grid with `pixels` positions."""
        raise NotImplementedError

    def coarsest_grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        """The smallest attention grid at this latent size (LMD shifts objects by its cells)."""
        raise NotImplementedError

    # Text.
    @property
    def tokenizer(self):
        """The tokenizer of the text the model grounds on (object tokens are located in it)."""
        raise NotImplementedError

    @property
    def token_space(self) -> TokenSpace:
        """Where `tokenizer`'s tokens sit in the conditioning sequence (default: all of it)."""
        return TokenSpace(self.tokenizer)

    def encode(self, texts: list[str], image_hw: tuple[int, int]) -> Conditioning:
        """One conditioning row per text."""
        raise NotImplementedError

    def pooled(self, texts: list[str]) -> torch.Tensor:
        """One pooled text embedding per text (GLIGEN's phrase embeddings)."""
        raise NotImplementedError

    # Sampling.
    def scheduler(self, steps: int, latent_hw: tuple[int, int] | None = None):
        """A fresh scheduler with the pipeline's config, set to `steps` for latents of
        `latent_hw` (a schedule that shifts with the image size reads it; the pipeline's own
        scheduler is left alone)."""
        scheduler = type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        return scheduler

    def init_sigma(self, scheduler) -> float:
        return float(scheduler.init_noise_sigma)

    def model_input(self, scheduler, latents: torch.Tensor, t) -> torch.Tensor:
        return scheduler.scale_model_input(latents, t)

    def noise_level(self, scheduler, index: int, t, rule: str = "scaling") -> float:
        """The step size of the energy update at step `index` (timestep `t`); `rule` is
        `LMDConfig.guidance_step_rule`."""
        raise NotImplementedError

    def check_scheduler(self, steps: int) -> None:
        """Raise `ValueError` when the pipeline's scheduler cannot run lmd's loop: one
        denoiser call per step, `steps` timesteps."""
        name = type(self.pipe.scheduler).__name__
        try:
            scheduler = self.scheduler(steps)
        except Exception as exc:  # a scheduler's own limits (PNDM under 4 steps, ...)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"the pipeline's scheduler {name} cannot take {steps} steps "
                             f"({first})") from exc  # fmt: skip
        if getattr(scheduler, "order", 1) != 1 or len(scheduler.timesteps) != steps:
            raise ValueError(
                f"the pipeline's scheduler {name} takes {len(scheduler.timesteps)} denoiser "
                f"calls for {steps} steps; lmd needs one call a step (DDIM, DDPM, Euler, "
                "DPM-Solver++ multistep, UniPC, DEIS, LMS)"
            )

    def sampler(self) -> tuple:
        """The scheduler as a hashable value (its class and config): per-box results drawn
        with another scheduler are other results."""
        config = self.pipe.scheduler.config
        items = tuple(sorted((k, _frozen(v)) for k, v in config.items() if not k.startswith("_")))
        return (type(self.pipe.scheduler).__name__, items)

    def forward(self, latents: torch.Tensor, t, text: Conditioning, kwargs: dict) -> torch.Tensor:
        """One denoiser forward on model input `latents` (no guidance, no counting)."""
        raise NotImplementedError

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
        """The classifier-free guided model output the scheduler steps with."""
        raise NotImplementedError

    def step(self, scheduler, output: torch.Tensor, t, latents: torch.Tensor) -> torch.Tensor:
        return scheduler.step(output, t, latents).prev_sample

    # Attention.
    @property
    def layers(self) -> HookedLayers:
        raise NotImplementedError

    def attention_modules(self, kind: str) -> dict[str, torch.nn.Module]:
        """Every attention layer of `kind` ("cross" or "self") by name, in execution order."""
        raise NotImplementedError

    def decoder_attention(self, kind: str) -> dict[str, torch.nn.Module]:
        """The attention layers of `kind` in the denoiser's decoder (a UNet's up blocks), in
        execution order; a denoiser without one gives the later half of its layers."""
        layers = list(self.attention_modules(kind).items())
        return dict(layers[len(layers) // 2 :])

    def capture_processor(self, store, name: str, inner):
        """The processor that runs `inner` on layer `name` and captures into `store`."""
        return CaptureProcessor(store, name, inner)

    # Images.
    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        raise NotImplementedError

    # Memory.
    def boxes_per_batch(self, layers: HookedLayers, latent_hw: tuple[int, int]) -> int:
        """How many guided rows fit in one per-box batch."""
        raise NotImplementedError

    # Capabilities.
    def has_gligen(self) -> bool:
        """Whether the loaded denoiser carries GLIGEN's gated layers."""
        return False


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


def map_tensors(value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`fn` applied to every tensor in nested dicts of keyword arguments."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_tensors(v, fn) for k, v in value.items()}
    return value


def merge_inputs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Row-wise concatenation of several rows' keyword arguments (same structure each)."""
    first = parts[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, torch.Tensor):
            out[key] = torch.cat([p[key] for p in parts])
        elif isinstance(value, dict):
            out[key] = merge_inputs([p[key] for p in parts])
        else:
            out[key] = value
    return out

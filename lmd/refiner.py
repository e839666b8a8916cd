"""Optional last step: the SDXL refiner as img2img at low strength (`--refine`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from lmd.layouts.errors import one_line
from lmd.models import (
    LIBRARY_LIMIT,
    REFINER_MODEL,
    ModelLoadError,
    dtype_kwarg,
    from_pretrained,
    looks_local,
    resolve_device,
    resolve_dtype,
)


@dataclass
class Refiner:
    """`refiner(image, prompt=...)` -> the image passed through SDXL refiner img2img.

    `strength` 0.3 keeps the layout and adds detail; with `num_inference_steps` 50 it runs
    15 denoising steps. `seed` makes the result repeatable.
    """

    pipe: Any
    strength: float = 0.3
    num_inference_steps: int = 50
    guidance_scale: float = 5.0

    def __call__(
        self,
        image: Image.Image,
        prompt: str = "",
        *,
        negative_prompt: str | None = None,
        seed: int = 0,
        strength: float | None = None,
    ) -> Image.Image:
        strength = self.strength if strength is None else strength
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"`strength` must be in (0, 1] but is {strength}")
        generator = torch.Generator(device="cpu").manual_seed(seed)
        out = self.pipe(
            prompt=prompt,
            negative_prompt=negative_prompt,
            image=image.convert("RGB"),
            strength=strength,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
        )
        return out.images[0]


def load_refiner(
    model: str = REFINER_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    strength: float = 0.3,
) -> Refiner:
    """The SDXL refiner (hub id or local diffusers folder) as a `Refiner` on `device`."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    kwargs: dict[str, Any] = dict(dtype_kwarg(torch_dtype))
    if torch_dtype == torch.float16 and not looks_local(str(model)) and model == REFINER_MODEL:
        kwargs["variant"] = "fp16"  # the published repo carries half-size fp16 weights
    pipe = from_pretrained(
        StableDiffusionXLImg2ImgPipeline.from_pretrained,
        str(model),
        what="refiner model",
        argument="refiner_model",
        **kwargs,
    )
    try:
        pipe = pipe.to(torch_device)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"refiner model {model!r} could not be moved to {torch_device}: "
            f"{one_line(exc, LIBRARY_LIMIT)}"
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    return Refiner(pipe, strength=strength)

"""What every denoising phase shares: one render's state, text encoding, counted UNet calls,
the guidance loop, GLIGEN inputs, decoding.

Classifier-free guidance batches are always ordered [uncond, cond] (stated here, once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from PIL import Image

from lmd.controller.attention import AttentionStore, StopForward
from lmd.controller.conditioning import Conditioning
from lmd.controller.config import LMDConfig
from lmd.controller.energy import guidance_update, noise_level
from lmd.controller.family import Family, family_of
from lmd.controller.methods import Method, get_method
from lmd.controller.trace import Trace

Callback = Callable[[str, int, int], None]
Energy = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""`energy(z, rows, t, index)` -> the energies [len(rows)] of model input `z` at step `index`."""


@dataclass
class Counts:
    forwards: int = 0  # UNet calls (a CFG batch of any size is one call)
    backwards: int = 0
    guidance_forwards: int = 0  # forwards stopped after the last guidance layer
    box_by_box_forwards: int = 0  # what the same work costs one box at a time
    box_by_box_backwards: int = 0


@dataclass
class Run:
    """One render's state: the pipeline, settings, the attention store and the counters."""

    pipe: object
    config: LMDConfig
    method: Method
    store: AttentionStore
    image_hw: tuple[int, int]
    latent_hw: tuple[int, int]
    callback: Callback | None = None
    counts: Counts = field(default_factory=Counts)
    trace: Trace | None = None
    family: Family | None = None  # read off the pipeline when not given

    def __post_init__(self) -> None:
        self.method = get_method(self.method)  # a name or a `Method`
        if self.family is None:
            self.family = family_of(self.pipe)

    def emit(self, name: str, value: torch.Tensor, step: int | None = None) -> None:
        """Report a named intermediate to the trace, if there is one (see `trace.py`)."""
        if self.trace is not None:
            self.trace(name, value.detach(), step)

    @property
    def unet(self):
        return self.pipe.unet

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    def scheduler(self):
        """A fresh scheduler with the pipeline's config (the pipeline's own is left alone)."""
        scheduler = type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)
        scheduler.set_timesteps(self.config.steps, device=self.device)
        return scheduler

    def progress(self, phase: str, step: int, total: int) -> None:
        if self.callback is not None:
            self.callback(phase, step, total)

    @property
    def init_sigma(self) -> float:
        return self.scheduler().init_noise_sigma

    # Text.
    def encode(self, texts: list[str]) -> Conditioning:
        """One conditioning row per text, encoded as the model family does."""
        with torch.no_grad():
            return self.family.encode(self.pipe, texts, self.image_hw, self.device, self.dtype)

    # UNet.
    def unet_call(self, latents, t, text: Conditioning, *, gligen: dict | None = None, rows=1):
        """One counted UNet call; returns None when the store ended it early."""
        kwargs = {"gligen": dict(gligen)} if gligen is not None else None
        self.counts.forwards += 1
        self.counts.box_by_box_forwards += rows
        try:
            return self.unet(latents, t, **text.unet_kwargs(), cross_attention_kwargs=kwargs)[0]
        except StopForward:
            self.counts.guidance_forwards += 1
            return None

    def cfg_eps(
        self, latents, t, text: Conditioning, scheduler, *, gligen=None, rows: int = 1
    ) -> torch.Tensor:
        """Classifier-free guided model output; `text` and the batch are [uncond, cond]."""
        doubled = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        with torch.no_grad():
            eps = self.unet_call(doubled, t, text, gligen=gligen, rows=rows)
        uncond, cond = eps.chunk(2)
        return uncond + self.config.cfg_scale * (cond - uncond)

    def guide(
        self,
        latents: torch.Tensor,
        index: int,
        t,
        scheduler,
        energy: Energy,
        carried: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Energy guidance at one step for every row of `latents` (Lian et al. 2024, Eq. 3).

        `energy(z, rows, t, index)` runs a guidance forward on the model input `z` of rows
        `rows` at timestep `t` (step index `index`) and returns their energies.
        Stop rule "recompute": a row whose energy is at or below the threshold gets no update
        and no more iterations this step. Stop rule "carried" (the paper's): a row iterates
        while the energy of its previous evaluation, kept in `carried` [rows] across steps,
        is above the threshold, and every evaluation is followed by an update.
        """
        cfg = self.config
        step = noise_level(scheduler, index, t)
        rows = torch.arange(latents.shape[0], device=latents.device)
        paper = cfg.stop_rule == "carried"
        if paper:
            if carried is None:
                raise ValueError("stop rule 'carried' needs the energies `carried` over steps")
            rows = rows[carried.to(rows.device) > cfg.loss_threshold]
        for _ in range(cfg.iterations(index)):
            if not len(rows):
                break
            z = latents[rows].detach().requires_grad_(True)
            with torch.enable_grad():
                e = energy(scheduler.scale_model_input(z, t), rows, t, index)
                over = e.detach() > cfg.loss_threshold
                step_rows = torch.ones_like(over) if paper else over
                if not bool(step_rows.any()):
                    break
                (grad,) = torch.autograd.grad((cfg.loss_scale * e[step_rows]).sum(), z)
            self.counts.backwards += 1
            self.counts.box_by_box_backwards += int(step_rows.sum())
            latents = latents.clone()
            latents[rows[step_rows]] = guidance_update(z.detach()[step_rows], grad[step_rows], step)
            if paper:
                carried[rows.to(carried.device)] = e.detach().to(carried.dtype)
            rows = rows[over]
        return latents.detach()

    # GLIGEN.
    def gligen(self, boxes: list[list[tuple]], phrases: list[list[str]], slots: int) -> dict:
        """GLIGEN's conditional inputs for rows of (normalised xyxy boxes, phrases), at most
        `slots` per row; every row's phrases go through the text encoder in one call."""
        dim = self.unet.config.cross_attention_dim
        rows = len(boxes)
        box_t = torch.zeros(rows, slots, 4, device=self.device, dtype=self.dtype)
        emb_t = torch.zeros(rows, slots, dim, device=self.device, dtype=self.dtype)
        mask_t = torch.zeros(rows, slots, device=self.device, dtype=self.dtype)
        kept = [min(len(b), len(p), slots) for b, p in zip(boxes, phrases, strict=True)]
        texts = [t for row, n in zip(phrases, kept, strict=True) for t in row[:n]]
        pooled = self._pooled(texts) if texts else None
        at = 0
        for r, n in enumerate(kept):
            if n:
                box_t[r, :n] = torch.tensor(boxes[r][:n], dtype=self.dtype)
                emb_t[r, :n] = pooled[at : at + n]
                mask_t[r, :n] = 1
                at += n
        return {"boxes": box_t, "positive_embeddings": emb_t, "masks": mask_t}

    def _pooled(self, texts: list[str]) -> torch.Tensor:
        tok = self.pipe.tokenizer
        inputs = tok(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.no_grad():
            return self.pipe.text_encoder(**inputs).pooler_output.to(self.dtype)

    # Images.
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


def is_gligen(unet) -> bool:
    return getattr(unet, "position_net", None) is not None

"""`Controller`: draws a `Layout` with a layout-grounded method (LMD, LMD+, ...) or plain SD.

    controller = Controller(pipe)
    result = controller.render(layout, seed=0, method="lmd")
    result.image.save("image.png")

Layouts with no boxes are drawn as plain SD from the background prompt (there is nothing to
ground). The method's flow draws the layout (`lmd.controller.flows`), on the pipeline's
backbone (`lmd.controller.backbones`). Any number of boxes works: LMD's boxes are drawn
`box_batch_size` at a time (by default what fits in the GPU's free memory); objects whose
tokens fall past the text encoder's length in the overall prompt get no overall guidance (a
warning says which); LMD+ grounds at most its `max_objects` boxes, the largest.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from lmd.controller.attention import AttentionStore
from lmd.controller.backbones import family_of
from lmd.controller.cache import BoxCache
from lmd.controller.config import LMDConfig
from lmd.controller.engine import Callback, Run
from lmd.controller.flows import ONE_PASS, Drawing, Drawn, flow_of
from lmd.controller.methods import Method, get_method
from lmd.controller.noise import gaussian, layout_seeds
from lmd.controller.result import RenderResult
from lmd.controller.trace import Trace
from lmd.layouts.model import Layout
from lmd.layouts.seeds import check_seed

if TYPE_CHECKING:
    from lmd.controller.story import StoryResult

StepCallback = Callable[[str, int, torch.Tensor, torch.Tensor], torch.Tensor | None]
"""`callback_on_step_end(phase, step, t, latents)` -> new latents, or None to keep them."""


class Controller:
    """Layout-to-image with LMD, LMD+ or any registered method, on a diffusers pipeline.

    `box_batch_size` boxes share one per-box batch (None: as many as fit in the free GPU
    memory by the backbone's estimate, 8 elsewhere).
    """

    def __init__(
        self,
        pipe,
        config: LMDConfig | None = None,
        segmenter=None,
        refine=None,
        model_id: str | None = None,
        box_batch_size: int | None = None,
    ):
        if box_batch_size is not None and box_batch_size < 1:
            raise ValueError(f"`box_batch_size` must be at least 1 or None, got {box_batch_size}")
        self.pipe = pipe
        self.config = config or LMDConfig()
        self.segmenter = segmenter
        self.refine = refine
        self.backbone = family_of(pipe)
        self.model_id = model_id or self.backbone.model_id()
        self.layers = self.backbone.layers
        self.box_batch_size = box_batch_size

    @property
    def vae_scale(self) -> int:
        return self.backbone.vae_scale

    @property
    def native_size(self) -> tuple[int, int]:
        """(height, width) the model was trained at."""
        return self.backbone.native_size

    def method(self, method: str | Method) -> Method:
        """The method a render runs: a registered one by name (its paper settings under
        `LMDConfig.paper()`), or the `Method` given."""
        if isinstance(method, Method):
            return method
        found = get_method(method)
        return found.paper() if self.config.paper_methods else found

    def check_inputs(self, layout, seed, method, height, width, object_seeds) -> None:
        if not isinstance(layout, Layout):
            raise ValueError(
                f"`layout` must be an lmd.layouts.Layout but is {type(layout).__name__}"
            )
        get_method(method).check(self.pipe, self.backbone)
        self.backbone.check_scheduler(self.config.steps)
        check_seed(seed)
        m = self.backbone.size_multiple
        if height <= 0 or width <= 0 or height % m or width % m:
            raise ValueError(
                f"`height` and `width` have to be positive and divisible by {m} "
                f"but are {height} and {width}"
            )
        if object_seeds is not None and len(object_seeds) != len(layout.boxes):
            raise ValueError(
                f"`object_seeds` has {len(object_seeds)} entries but the layout has "
                f"{len(layout.boxes)} boxes"
            )

    def render(
        self,
        layout: Layout,
        *,
        seed: int = 0,
        object_seeds: list[int | None] | None = None,
        method: str | Method = "lmd",
        height: int | None = None,
        width: int | None = None,
        cache: BoxCache | None = None,
        callback: Callback | None = None,
        callback_on_step_end: StepCallback | None = None,
        trace: Trace | None = None,
    ) -> RenderResult:
        """Draw `layout`; `callback(phase, step, total)` is called after every denoising step.

        `callback_on_step_end(phase, step, t, latents)` (as diffusers' pipelines) sees every
        phase's latents after each step and may return new ones to continue from (phase
        "boxes": one row per object drawn; "overall": the image). `trace(name, tensor, step)`
        receives the named intermediates (see `lmd.controller.trace`).
        """
        start = time.perf_counter()
        # 1. Check inputs and scale the layout to the image.
        nh, nw = self.native_size
        height, width = height or nh, width or nw
        method = self.method(method)
        self.check_inputs(layout, seed, method, height, width, object_seeds)
        scaled = layout.scaled(width, height)
        latent_hw = self.backbone.latent_hw((height, width))
        run = Run(
            self.pipe, self.config, method, AttentionStore(self.layers), (height, width),
            latent_hw, callback, trace=trace, backbone=self.backbone,
            box_batch_size=self.box_batch_size, on_step=callback_on_step_end,
        )  # fmt: skip
        seeds = layout_seeds(seed, scaled, object_seeds, self.config)
        noise = gaussian(seed, (self.backbone.latent_channels, *latent_hw))
        # 2. The method's flow draws it (a layout without boxes: one plain pass).
        drawing = Drawing(run, scaled, seed, seeds, noise, self.model_id, cache, self.segmenter)
        flow = flow_of(method) if scaled.boxes else ONE_PASS
        drawn: Drawn = flow.draw(drawing)
        # 3. Decode (and refine).
        image = self._finish(run, drawn.latents, drawn.prompt)
        return RenderResult(
            image=image, layout=scaled, box_images=drawn.box_images, masks=drawn.masks,
            generated=drawn.generated, reused=drawn.reused,
            seconds=time.perf_counter() - start, object_seeds=seeds, counts=run.counts,
        )  # fmt: skip

    def _finish(self, run: Run, latents: torch.Tensor, prompt: str) -> Image.Image:
        """Decode, then refine (a refiner that takes `prompt` gets the overall prompt)."""
        run.emit("final_latents", latents)
        image = run.decode(latents)[0]
        if run.trace is not None:
            run.emit("image", torch.from_numpy(np.asarray(image).copy()))
        return self.refined(image, prompt)

    def refined(self, image: Image.Image, prompt: str) -> Image.Image:
        """`image` through the refiner, if there is one (given `prompt` when it takes one)."""
        if self.refine is None:
            return image
        if "prompt" in inspect.signature(self.refine).parameters:
            return self.refine(image, prompt=prompt)
        return self.refine(image)

    def render_story(self, layouts: list[Layout], **options) -> StoryResult:
        """Draw several layouts together, their shared subjects kept alike (ConsiStory's
        shared attention): see `lmd.controller.story.render_story` for the options."""
        from lmd.controller.story import render_story

        return render_story(self, layouts, **options)


__all__ = ["Controller", "RenderResult", "StepCallback"]

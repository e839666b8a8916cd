"""The Python API: `generate(caption)` plans a layout with an LLM and draws it with LMD.

`Renderer` is the bridge between the diffusion controller and everything that renders layouts
over and over (the conversation, `lmd chat`, `lmd bench edit`): it keeps the loaded models and
a per-object cache, and it is the `RenderFn` a `conversation.Conversation` is handed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layouts import Layout, LmdError, atomic_save_image, draw

if TYPE_CHECKING:
    from PIL import Image

    from conversation.render import Progress, RenderOutput, RenderRequest
    from lmd.controller import BoxCache, Controller, RenderResult


class RenderError(LmdError):
    """Rendering failed for a reason other than bad input (out of memory, a broken model)."""


@dataclass(frozen=True)
class RenderSettings:
    """Which models draw a layout, and how; `None` means the method's default."""

    model: str | None = None
    method: str = "lmd"
    steps: int | None = None
    sam: bool = True
    sam_model: str | None = None
    sam_checkpoint: str | None = None
    device: str | None = None
    dtype: str | None = None
    height: int | None = None
    width: int | None = None
    refine: bool = False
    paper: bool = False  # LMDConfig.paper(): the paper's code exactly, for comparisons

    def replace(self, **changes: Any) -> RenderSettings:
        return dataclasses.replace(self, **changes)


@lru_cache(maxsize=2)
def load_controller(settings: RenderSettings) -> Controller:
    """Load the models `settings` name (kept for the next call with the same settings)."""
    from lmd.controller import Controller, LMDConfig
    from lmd.models import default_model, load_pipeline

    model = settings.model or default_model(settings.method)
    pipe = load_pipeline(
        model, method=settings.method, device=settings.device, dtype=settings.dtype
    )
    segmenter = None
    if settings.sam and settings.method != "sd":
        from lmd.sam import load_segmenter

        sam_model = settings.sam_model
        if sam_model is None and settings.sam_checkpoint is None and model.startswith("random:"):
            sam_model = "random:tiny"  # random weights: no SAM download either
        segmenter = load_segmenter(
            sam_model,
            checkpoint=settings.sam_checkpoint,
            device=settings.device,
            dtype=settings.dtype,
        )
    refine = None
    if settings.refine:
        from lmd.refiner import load_refiner

        refine = load_refiner(device=settings.device, dtype=settings.dtype)
    config = LMDConfig.paper() if settings.paper else LMDConfig()
    if settings.steps is not None:
        config = config.replace(steps=settings.steps)
    return Controller(pipe, config=config, segmenter=segmenter, refine=refine, model_id=model)


class Renderer:
    """Draws layouts with one loaded controller, reusing per-object work between calls.

    `cache` keeps that work (default: a `BoxCache` with its default memory budget; pass
    `BoxCache(max_bytes=...)` to change it).
    """

    def __init__(
        self,
        settings: RenderSettings | None = None,
        controller: Controller | None = None,
        cache: BoxCache | None = None,
    ):
        from lmd.controller import BoxCache

        self.settings = settings or RenderSettings()
        self.controller = controller or load_controller(self.settings)
        self.cache = cache if cache is not None else BoxCache()

    def render(
        self,
        layout: Layout,
        *,
        seed: int = 0,
        object_seeds: list[int] | None = None,
        progress: Progress | None = None,
    ) -> RenderResult:
        """Draw `layout`; objects already drawn with the same look are reused, not redrawn."""
        try:
            return self.controller.render(
                layout,
                seed=seed,
                object_seeds=object_seeds,
                method=self.settings.method,
                height=self.settings.height,
                width=self.settings.width,
                cache=self.cache,
                callback=progress,
            )
        except (LmdError, ValueError):
            raise
        except (RuntimeError, MemoryError) as e:  # out of memory, a model that broke mid-way
            raise RenderError(f"rendering failed: {' '.join(str(e).split())[:300]}") from e

    def __call__(self, request: RenderRequest) -> RenderOutput:
        """The conversation's `RenderFn`."""
        from conversation.render import RenderOutput

        result = self.render(
            request.layout,
            seed=request.background_seed,
            object_seeds=list(request.object_seeds),
            progress=request.progress,
        )
        return RenderOutput(
            image=result.image,
            generated=result.generated,
            reused=result.reused,
            box_images=list(result.box_images),
        )


def save_outputs(out_dir: str | Path, image: Image.Image, layout: Layout) -> dict[str, Path]:
    """Write `image.png`, `layout.json` and `layout.png` (the layout over the image) atomically."""
    out = Path(out_dir)
    return {
        "image": atomic_save_image(image, out / "image.png"),
        "layout": layout.save(out / "layout.json"),
        "layout_image": atomic_save_image(draw(layout, image), out / "layout.png"),
    }


@dataclass
class GenerateResult:
    """What `generate` made: the picture, the layout the LLM planned, and where files went."""

    image: Image.Image
    layout: Layout
    seed: int
    reply: str
    files: dict[str, Path] = field(default_factory=dict)
    render: RenderResult | None = None


def generate(
    caption: str,
    *,
    llm: str | None = None,
    llm_base_url: str | None = None,
    llm_cache: bool = True,
    llm_timeout: float = 120.0,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    planner: Any = None,
    renderer: Renderer | None = None,
    **render_options: Any,
) -> GenerateResult:
    """Plan a layout for `caption` with an LLM, then draw it.

    `render_options` are `RenderSettings` fields (model, method, steps, sam, sam_checkpoint,
    device, dtype, height, width, refine, paper). With `out_dir`, `image.png`, `layout.json`
    and `layout.png` are written there. `llm_timeout` bounds the LLM request in seconds,
    retries included.
    """
    from prompts import Planner

    unknown = set(render_options) - {f.name for f in dataclasses.fields(RenderSettings)}
    if unknown:
        raise TypeError(f"generate() got unknown options: {', '.join(sorted(unknown))}")
    planner = planner or Planner(
        model=llm, api_base=llm_base_url, cache=llm_cache, llm_timeout=llm_timeout
    )
    plan = planner.complete(planner.plan_messages(caption))
    renderer = renderer or Renderer(RenderSettings(**render_options))
    result = renderer.render(plan.layout, seed=seed, progress=progress)
    files = save_outputs(out_dir, result.image, plan.layout) if out_dir is not None else {}
    return GenerateResult(
        image=result.image, layout=plan.layout, seed=seed, reply=plan.reply, files=files,
        render=result,
    )  # fmt: skip

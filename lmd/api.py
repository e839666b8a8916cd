"""The Python API: `generate(caption)` plans a layout with an LLM and draws it with LMD.

`Renderer` is the bridge between the diffusion controller and everything that renders layouts
over and over (the conversation, `lmd chat`, `lmd bench edit`): it keeps the loaded models and
a per-object cache, and it is the `RenderFn` a `lmd.conversation.Conversation` is handed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmd.layouts import Layout, LmdError, atomic_save_image, draw
from lmd.layouts.errors import one_line
from lmd.quiet import quiet_libraries
from lmd.settings import RenderSettings

if TYPE_CHECKING:
    from PIL import Image

    from lmd.controller import BoxCache, ConsistencySettings, Controller, RenderResult
    from lmd.controller.controller import StepCallback
    from lmd.controller.story import StoryResult
    from lmd.conversation.render import Progress, RenderOutput, RenderRequest
    from lmd.prompts import PlanResult


class RenderError(LmdError):
    """Rendering failed for a reason other than bad input (out of memory, a broken model)."""


@lru_cache(maxsize=2)
def load_controller(settings: RenderSettings) -> Controller:
    """Load the models `settings` name (kept for the next call with the same settings)."""
    from lmd.controller import Controller, LMDConfig
    from lmd.models import default_steps, load_pipeline

    settings.check()
    with quiet_libraries():
        pipe = load_pipeline(
            settings.model_id, method=settings.method, device=settings.device,
            dtype=settings.dtype,
        )  # fmt: skip
        segmenter = None
        if settings.segments:
            from lmd.segment import load_segmenter

            segmenter = load_segmenter(
                settings.sam_spec, sam_backend=settings.sam_backend, device=settings.device,
                dtype=settings.dtype,
            )  # fmt: skip
        refine = None
        if settings.refines:
            from lmd.models import REFINER_MODEL
            from lmd.refiner import load_refiner

            refine = load_refiner(
                settings.refiner_model or REFINER_MODEL, device=settings.device,
                dtype=settings.dtype,
            )  # fmt: skip
    config = LMDConfig.paper() if settings.paper else LMDConfig()
    steps = settings.steps if settings.steps is not None else default_steps(settings.model_id)
    if steps is not None:
        config = config.replace(steps=steps)
    return Controller(
        pipe, config=config, segmenter=segmenter, refine=refine, model_id=settings.model_id
    )


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
        consistency: ConsistencySettings | None = None,
    ):
        from lmd.controller import BoxCache, ConsistencySettings

        self.settings = settings or RenderSettings()
        self.controller = controller or load_controller(self.settings)
        self.cache = cache if cache is not None else BoxCache()
        self.consistency = consistency if consistency is not None else ConsistencySettings()

    def render(
        self,
        layout: Layout,
        *,
        seed: int = 0,
        object_seeds: list[int] | None = None,
        progress: Progress | None = None,
        callback_on_step_end: StepCallback | None = None,
    ) -> RenderResult:
        """Draw `layout`; objects already drawn with the same look are reused, not redrawn.
        `callback_on_step_end(phase, step, t, latents)` may watch or replace the latents of
        every phase after each step (see `Controller.render`)."""
        with _render_errors():
            return self.controller.render(
                layout,
                seed=seed,
                object_seeds=object_seeds,
                method=self.settings.drawing_method(),
                height=self.settings.height,
                width=self.settings.width,
                cache=self.cache,
                callback=progress,
                callback_on_step_end=callback_on_step_end,
            )

    def render_story(
        self,
        layouts: list[Layout],
        *,
        seed: int | list[int] = 0,
        object_seeds: list[list[int | None] | None] | None = None,
        progress: Progress | None = None,
        consistency: ConsistencySettings | None | bool = True,
        subjects: list[tuple[int, ...]] | None = None,
        anchors: list[int] | None = None,
    ) -> StoryResult:
        """Draw `layouts` together, their recurring subjects kept alike (`consistency` True:
        this renderer's settings; False or None: each drawn as alone; or the settings to use).
        See `lmd.controller.story.render_story` for the other options."""
        if consistency is True:
            consistency = self.consistency
        with _render_errors():
            return self.controller.render_story(
                list(layouts), seeds=seed, object_seeds=object_seeds,
                method=self.settings.drawing_method(), height=self.settings.height,
                width=self.settings.width, cache=self.cache, callback=progress,
                consistency=consistency or None, subjects=subjects, anchors=anchors,
            )  # fmt: skip

    def __call__(self, request: RenderRequest) -> RenderOutput:
        """The conversation's `RenderFn` (with anchors: `lmd.anchored.render_anchored`)."""
        from lmd.anchored import render_anchored

        return render_anchored(self, request)


@contextmanager
def _render_errors() -> Iterator[None]:
    """Out of memory, or a model that broke mid-way: one `RenderError`; bad input as it is."""
    try:
        yield
    except (LmdError, ValueError):
        raise
    except (RuntimeError, MemoryError) as e:
        raise RenderError(f"rendering failed: {one_line(e, 300)}") from e


def save_outputs(
    out_dir: str | Path, image: Image.Image, layout: Layout, *, overwrite: bool = True
) -> dict[str, Path]:
    """Write `image.png`, `layout.json` and `layout.png` (the layout over the image) atomically.

    With `overwrite` False, a folder that holds them already keeps them: the new files are
    numbered (`image-001.png`, `layout-001.json`, `layout-001.png`; see `lmd.outputs`).
    """
    from lmd.outputs import output_paths

    paths = output_paths(out_dir, overwrite)
    try:
        return {
            "image": atomic_save_image(image, paths["image"]),
            "layout": layout.save(paths["layout"]),
            "layout_image": atomic_save_image(draw(layout, image), paths["layout_image"]),
        }
    except BaseException:
        with contextlib.suppress(OSError):  # a claimed number left empty goes back
            if paths["image"].stat().st_size == 0:
                paths["image"].unlink()
        raise


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
    callback_on_step_end: StepCallback | None = None,
    planner: Any = None,
    renderer: Renderer | None = None,
    on_plan: Callable[[PlanResult], None] | None = None,
    overwrite: bool = False,
    **render_options: Any,
) -> GenerateResult:
    """Plan a layout for `caption` with an LLM, then draw it.

    `render_options` are `RenderSettings` fields (model, method, steps, sam, sam_model,
    sam_backend, device, dtype, height, width, refine, refiner_model, paper). With `out_dir`,
    `image.png`, `layout.json` and `layout.png` are written there (numbered, `image-001.png`
    ..., where earlier ones are, unless `overwrite`). `llm_timeout` bounds the
    LLM request in seconds, retries included. Everything that can be checked without
    loading a model (the options, the models' names, `out_dir`) is checked before the LLM
    is asked. `on_plan(plan)` is called with the planned `PlanResult` before the models
    load and draw (to show the layout early). `callback_on_step_end(phase, step, t, latents)`
    sees (and may replace) the latents of each phase after every step, as in diffusers.
    """
    # 1. Check inputs before spending an LLM call or a render.
    planner = checked_inputs(
        "generate", render_options, renderer, out_dir, planner,
        model=llm, llm_base_url=llm_base_url, cache=llm_cache, llm_timeout=llm_timeout,
    )  # fmt: skip
    # 2. Plan, load, draw, save.
    plan = planner.complete(planner.plan_messages(caption))
    if on_plan is not None:
        on_plan(plan)
    renderer = renderer or Renderer(RenderSettings(**render_options))
    result = renderer.render(
        plan.layout, seed=seed, progress=progress, callback_on_step_end=callback_on_step_end
    )
    files = {}
    if out_dir is not None:
        files = save_outputs(out_dir, result.image, plan.layout, overwrite=overwrite)
    return GenerateResult(
        image=result.image, layout=plan.layout, seed=seed, reply=plan.reply, files=files,
        render=result,
    )  # fmt: skip


def checked_inputs(
    who: str,
    render_options: dict[str, Any],
    renderer: Renderer | None,
    out_dir: str | Path | None,
    planner: Any,
    **llm: Any,
) -> Any:
    """What `generate()` and `generate_story()` check before an LLM call or a render: the
    render options (names, then rules and models, unless a loaded `renderer` is given instead)
    and `out_dir`. Returns `planner`, or a `Planner` made with the `llm` keywords."""
    from lmd.prompts import Planner

    unknown = set(render_options) - {f.name for f in dataclasses.fields(RenderSettings)}
    if unknown:
        raise TypeError(f"{who}() got unknown options: {', '.join(sorted(unknown))}")
    if renderer is not None and render_options:
        raise TypeError("pass `renderer` or render options, not both: a renderer has its own")
    planner = planner or Planner(**llm)
    if renderer is None:  # a renderer's models are loaded already
        RenderSettings(**render_options).check()
    if out_dir is not None:
        check_out_dir(out_dir)
    return planner


def check_out_dir(out_dir: str | Path, argument: str = "out_dir") -> Path:
    """Raise `ValueError` unless `out_dir` is, or can become, a writable folder; return it."""
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"`{argument}` {str(path)!r} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(
            f"`{argument}` {str(path)!r} cannot be a folder: {str(existing)!r} is a file"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"`{argument}` {str(path)!r} is not writable")
    return path

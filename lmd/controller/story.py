"""`render_story`: several layouts drawn together as rows of one batch, the subjects they share
kept alike by ConsiStory's shared attention (`lmd.controller.consistency`).

    story = controller.render_story([beach, snow, asleep], seeds=[1, 2, 3], method="lmd")
    for result in story.results: ...

The method's flow draws every image at once (`draw_many`: LMD's per-box phase holds every
image's boxes, its overall phase one row per image); the shared attention is a hook source
combined with the method's own hooks. Without `consistency` (or with `share=False`) each image
is what the method draws for it alone, up to float rounding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lmd.controller.attention import AttentionStore
from lmd.controller.cache import BoxCache
from lmd.controller.consistency import Consistency, ConsistencySettings
from lmd.controller.engine import Callback, Counts, Run
from lmd.controller.flows import ONE_PASS, Drawing, flow_of
from lmd.controller.methods import Method
from lmd.controller.noise import gaussian, layout_seeds
from lmd.controller.result import RenderResult
from lmd.controller.trace import Trace, row_name
from lmd.layouts.model import Layout


@dataclass
class StoryResult:
    """Every image of a story (in the order of the layouts) and how it was drawn."""

    results: list  # RenderResult per image
    subjects: list[tuple[int, ...]]  # per image: the layout box indices that are subjects
    anchors: list[int]  # the images the others attend to
    seconds: float
    counts: Counts
    consistency: Consistency | None = None  # the hook source, when shared attention ran

    @property
    def images(self) -> list:
        return [r.image for r in self.results]


def recurring(layouts: list[Layout]) -> list[tuple[int, ...]]:
    """Per layout, the boxes whose name (ignoring case) appears in at least two layouts."""
    seen: dict[str, set[int]] = {}
    for k, layout in enumerate(layouts):
        for box in layout.boxes:
            seen.setdefault(box.name.casefold(), set()).add(k)
    return [
        tuple(i for i, b in enumerate(layout.boxes) if len(seen[b.name.casefold()]) > 1)
        for layout in layouts
    ]


def default_anchors(subjects: list[tuple[int, ...]], count: int) -> list[int]:
    """The first `count` images that hold a subject."""
    return [k for k, s in enumerate(subjects) if s][:count]


def no_consistency(label: str) -> str:
    """Why consistent subjects cannot be drawn on a model of family `label` (SD3, FLUX)."""
    return (
        f"consistent subjects (ConsiStory's shared self-attention) run on SD 1.x, 2.x and "
        f"SDXL, not on {label}; draw the pictures without consistency (`consistency=False`, "
        "`lmd story --no-consistency`)"
    )


def render_story(
    controller,
    layouts: list[Layout],
    *,
    seeds: int | list[int] = 0,
    object_seeds: list[list[int | None] | None] | None = None,
    method: str | Method = "lmd",
    height: int | None = None,
    width: int | None = None,
    cache: BoxCache | None = None,
    callback: Callback | None = None,
    callback_on_step_end=None,
    trace: Trace | None = None,
    consistency: ConsistencySettings | None = None,
    subjects: list[tuple[int, ...]] | None = None,
    anchors: list[int] | None = None,
) -> StoryResult:
    """Draw `layouts` together (see the module docstring).

    `seeds`: one background seed per image, or one int: image k gets `seeds + k`.
    `object_seeds[k]`: image k's object seeds (None entries derived from its seed, as `render`
    derives them). `subjects[k]`: the box indices
    of image k's subjects (default: the boxes whose name recurs, `recurring`); `anchors`: the
    images the others attend to (default: the first `consistency.anchors` with a subject).
    `consistency` None draws every image as the method draws it alone.
    """

    start = time.perf_counter()
    # 1. Check inputs and scale the layouts.
    n = _check(layouts, seeds, object_seeds, subjects, anchors)
    seeds = list(seeds) if isinstance(seeds, list) else [seeds + k for k in range(n)]
    nh, nw = controller.native_size
    height, width = height or nh, width or nw
    method = controller.method(method)
    for k, layout in enumerate(layouts):
        given = object_seeds[k] if object_seeds is not None else None
        controller.check_inputs(layout, seeds[k], method, height, width, given)
    scaled = [layout.scaled(width, height) for layout in layouts]
    subjects = [tuple(s) for s in subjects] if subjects is not None else recurring(scaled)
    if anchors is None:
        anchors = default_anchors(subjects, consistency.anchors if consistency else 0)
    # 2. One run for every image; the shared attention joins the method's hooks.
    backbone = controller.backbone
    latent_hw = backbone.latent_hw((height, width))
    run = Run(
        controller.pipe, controller.config, method, AttentionStore(controller.layers),
        (height, width), latent_hw, callback, trace=trace, backbone=backbone,
        box_batch_size=controller.box_batch_size, on_step=callback_on_step_end,
    )  # fmt: skip
    source = None
    if consistency is not None and consistency.share and n > 1 and backbone.joint:
        raise ValueError(no_consistency(backbone.label))
    if consistency is not None and consistency.share and n > 1:
        source = Consistency(consistency, subjects, anchors, seeds[0])
        run.extra.append(source)
    all_seeds = [
        layout_seeds(seeds[k], layout, object_seeds[k] if object_seeds is not None else None,
               controller.config)
        for k, layout in enumerate(scaled)
    ]  # fmt: skip
    drawings = [
        Drawing(
            run,
            layout,
            seeds[k],
            all_seeds[k],
            gaussian(seeds[k], (backbone.latent_channels, *latent_hw)),
            controller.model_id,
            cache,
            controller.segmenter,
        )  # fmt: skip
        for k, layout in enumerate(scaled)
    ]
    # 3. The method's flow draws them all (layouts without boxes: one plain pass).
    flow = flow_of(method) if any(layout.boxes for layout in scaled) else ONE_PASS
    if not hasattr(flow, "draw_many"):
        raise ValueError(
            f"method {method.name!r} draws one picture at a time: its flow has no draw_many"
        )
    drawn = flow.draw_many(drawings)
    # 4. Decode (and refine).
    latents = torch.cat([d.latents for d in drawn])
    for k in range(n):
        run.emit(row_name(k, n, "final_latents"), latents[k : k + 1])
    pictures = run.decode(latents)
    seconds = time.perf_counter() - start
    results = []
    for k, (d, picture) in enumerate(zip(drawn, pictures, strict=True)):
        if run.trace is not None:
            run.emit(row_name(k, n, "image"), torch.from_numpy(_array(picture)))
        results.append(
            RenderResult(
                image=controller.refined(picture, d.prompt),
                layout=scaled[k],
                box_images=d.box_images,
                masks=d.masks,
                generated=d.generated,
                reused=d.reused,
                seconds=seconds,
                object_seeds=all_seeds[k],
                counts=run.counts,
            )  # fmt: skip
        )
    seconds = time.perf_counter() - start
    for r in results:
        r.seconds = seconds
    return StoryResult(results, subjects, list(anchors), seconds, run.counts, source)


def _check(layouts, seeds, object_seeds, subjects, anchors) -> int:
    if not isinstance(layouts, list | tuple) or not layouts:
        raise ValueError("`layouts` must be a non-empty list of lmd.layouts.Layout")
    n = len(layouts)
    for name, value in (("seeds", seeds), ("object_seeds", object_seeds), ("subjects", subjects)):
        if isinstance(value, list | tuple) and len(value) != n:
            raise ValueError(f"`{name}` has {len(value)} entries but there are {n} layouts")
    if subjects is not None:
        for k, (chosen, layout) in enumerate(zip(subjects, layouts, strict=True)):
            if any(not 0 <= i < len(layout.boxes) for i in chosen):
                raise ValueError(
                    f"`subjects[{k}]` names a box that layout {k} does not have: {list(chosen)}"
                )
    if anchors is not None and any(not 0 <= a < n for a in anchors):
        raise ValueError(f"`anchors` must be image indices below {n}, got {list(anchors)}")
    return n


def _array(image):
    import numpy as np

    return np.asarray(image).copy()

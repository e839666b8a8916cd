"""`render_anchored`: a conversation's picture drawn beside the earlier turns that anchor its
recurring objects, so those keep their look (ConsiStory's shared attention, Tewel et al. 2024:
"reuse the same subject in new scenes by drawing the anchor images again with their prompts
and seeds in a new batch").

An object needs its anchor unless the method draws it exactly as before anyway: a method that
draws each object on its own (LMD's per-box phase, cached) reuses an object whose name, size,
seed and scene are unchanged (`kept_boxes`); a one-pass method redraws everything, so every
recurring object is anchored. At most `ConsistencySettings.anchors` anchor turns are drawn:
those anchoring the most objects (then the latest). The anchor turns are drawn again from
their layouts and seeds as the first rows of a story whose last row is the new picture; only
that picture is kept, and its objects' drawn/reused counts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lmd.controller import ConsistencySettings
    from lmd.conversation.render import Anchor, RenderOutput, RenderRequest
    from lmd.settings import RenderSettings


class Renderer(Protocol):
    """What this module needs of `lmd.api.Renderer` (which calls it, so is not imported)."""

    settings: RenderSettings
    consistency: ConsistencySettings

    def render(self, layout: Any, **options: Any) -> Any: ...

    def render_story(self, layouts: list, **options: Any) -> Any: ...


def needed(renderer: Renderer, request: RenderRequest) -> list[Anchor]:
    """The anchors this renderer draws for `request`, each cut to the boxes that need it."""
    from lmd.controller.methods import get_method
    from lmd.conversation.render import kept_boxes

    settings = renderer.consistency
    if not request.anchors or not settings.share:
        return []
    reuses = get_method(renderer.settings.method).flow == "boxes"
    useful = []
    for anchor in request.anchors:
        kept = kept_boxes(request, anchor) if reuses else set()
        boxes = {j: i for j, i in anchor.boxes.items() if j not in kept}
        if boxes:
            useful.append(dataclasses.replace(anchor, boxes=boxes))
    useful.sort(key=lambda a: (len(a.boxes), a.turn), reverse=True)
    return sorted(useful[: settings.anchors], key=lambda a: a.turn)


def render_anchored(renderer: Renderer, request: RenderRequest) -> RenderOutput:
    """Draw `request` (the conversation's `RenderFn`), with its anchors where they are needed."""
    from lmd.conversation.render import RenderOutput

    anchors = needed(renderer, request)
    if not anchors:
        result = renderer.render(
            request.layout, seed=request.background_seed,
            object_seeds=list(request.object_seeds), progress=request.progress,
        )  # fmt: skip
        return RenderOutput(result.image, result.generated, result.reused,
                            list(result.box_images))  # fmt: skip
    mine = sorted({j for a in anchors for j in a.boxes})
    story = renderer.render_story(
        [*(a.layout for a in anchors), request.layout],
        seed=[*(a.background_seed for a in anchors), request.background_seed],
        object_seeds=[*(list(a.object_seeds) for a in anchors), list(request.object_seeds)],
        progress=request.progress,
        subjects=[*(tuple(sorted(set(a.boxes.values()))) for a in anchors), tuple(mine)],
        anchors=list(range(len(anchors))),
    )
    last = story.results[-1]
    anchored = {j: a.turn for a in anchors for j in a.boxes}
    return RenderOutput(last.image, last.generated, last.reused, list(last.box_images), anchored)

"""`SketchRenderer`: a torch-free `RenderFn` that paints the layout's boxes, for the tests of
the conversation, the REPL and the web page (stage 2's `Renderer` needs a diffusion model)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from lmd.conversation.render import RenderOutput, RenderRequest, kept_boxes, object_key
from lmd.layouts.draw import draw
from PIL import Image


@dataclass
class SketchRenderer:
    """Paints the layout with `lmd.layouts.draw` on a background tinted by the background seed.

    It remembers which objects it has drawn before and counts those as reused, keyed as lmd's
    per-object cache keys them: `object_key` and the background seed and prompts (an object
    drawn over another background is drawn again). It reports the anchors it is given as
    used, for every object it would draw differently from its anchor (`kept_boxes`).
    """

    seen: set[tuple] = field(default_factory=set)

    def __call__(self, request: RenderRequest) -> RenderOutput:
        layout = request.layout
        digest = hashlib.sha256(str(request.background_seed).encode()).digest()
        tint = tuple(200 + b % 56 for b in digest[:3])
        canvas = Image.new("RGB", (layout.width, layout.height), tint)
        generated = reused = 0
        total = len(layout.boxes)
        for step, (box, seed) in enumerate(
            zip(layout.boxes, request.object_seeds, strict=True), start=1
        ):
            key = (*object_key(box, seed), request.background_seed, layout.background,
                   layout.negative)  # fmt: skip
            if key in self.seen:
                reused += 1
            else:
                generated += 1
                self.seen.add(key)
            if request.progress is not None:
                request.progress(box.name, step, total)
        anchored = {
            j: anchor.turn
            for anchor in request.anchors
            for j in anchor.boxes
            if j not in kept_boxes(request, anchor)
        }
        return RenderOutput(
            image=draw(layout, canvas), generated=generated, reused=reused, anchored=anchored
        )

"""What a flow is asked to draw (`Drawing`) and what it gives back (`Drawn`).

A flow turns a scaled layout into final latents: `ONE_PASS` denoises the whole image once
(the method's hooks change the denoiser), `BOXES` is LMD's per-box generation, composition
and overall generation. A method names its flow (`Method.flow`) or brings its own: any object
with `draw(drawing) -> Drawn`. A flow that can also draw several images together, as rows of
one batch (a story: `Controller.render_story`), has `draw_many(drawings) -> [Drawn]`; the
built-in flows do, and `draw` is its one-image case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from lmd.controller.cache import BoxCache
from lmd.controller.captions import TokenRule, overall_phrases, overall_prompt, overall_tokens
from lmd.controller.engine import Run
from lmd.controller.phase import PhaseObject, PhaseRow
from lmd.layouts.model import Layout


@dataclass
class Drawing:
    """One render's request to a flow."""

    run: Run
    layout: Layout  # scaled to the image
    seed: int
    object_seeds: list[int]
    background_noise: torch.Tensor  # [C, h, w], unit variance
    model_id: str
    cache: BoxCache | None = None
    segmenter: object = None

    @property
    def negative(self) -> str:
        """The overall negative prompt: the layout's and the config's quality words."""
        return join(self.layout.negative, self.run.config.quality_negative)


@dataclass
class Drawn:
    """A flow's answer: the final latents [1, C, h, w] and what it drew on the way."""

    latents: torch.Tensor
    prompt: str  # the overall prompt (a refiner that takes a prompt gets it)
    box_images: list[Image.Image] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)
    generated: int = 0
    reused: int = 0


@dataclass(frozen=True)
class OverallText:
    """The overall prompt of a layout: its phrases (identical names counted), the boxes of
    each and, located in the prompt, each phrase's tokens."""

    prompt: str
    phrases: list[str]
    groups: list[list[int]]
    tokens: list

    @classmethod
    def of(cls, run: Run, layout: Layout, locate: bool = True) -> OverallText:
        """`locate`: find each phrase's tokens (else `tokens` is empty)."""
        cfg = run.config
        phrases, groups = overall_phrases(layout.names, sort=cfg.prompt_order == "sorted")
        prompt = overall_prompt(layout.background, phrases)
        tokens = []
        if locate and phrases:
            space, rule = run.backbone.token_space, TokenRule.of(cfg)
            tokens = overall_tokens(space, layout.background, phrases, rule)
        return cls(prompt, phrases, groups, tokens)

    def row(self, run: Run, layout: Layout, cells, masks=None) -> PhaseRow:
        """The overall row as a method's hooks see it: every box, in prompt order (`masks`:
        each box's object mask in place, where the flow has them; tokens None when not
        located)."""
        (ih, iw) = run.image_hw
        tokens = self.tokens or [None] * len(self.phrases)
        objects = []
        for phrase, group, tok in zip(self.phrases, self.groups, tokens, strict=True):
            for b in group:
                box = layout.boxes[b]
                xyxy = (box.x / iw, box.y / ih, (box.x + box.w) / iw, (box.y + box.h) / ih)
                mask = masks[b] if masks is not None else None
                objects.append(PhaseObject(box.name, phrase, cells[b], xyxy, tok, b, mask))
        return PhaseRow(self.prompt, tuple(objects))


def join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)

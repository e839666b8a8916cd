"""Per-box results as reusable objects, and `BoxCache`, which keeps them between renders.

A per-box result depends on the model, the object's name, its box size on the latent grid,
its seed, the background seed, the background and negative prompts, the method and the
settings; not on where the box is: LMD draws every object centred and shifts it into place
afterwards, so a moved object of the same size is an exact hit. LMD+ draws in place; a hit
for a moved LMD+ box is shifted by the move (an approximation of a fresh draw).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from PIL import Image

from lmd.controller.config import LMDConfig
from lmd.controller.noise import Cells


@dataclass(frozen=True)
class BoxKey:
    model: str
    name: str
    size: tuple[int, int]  # (w, h) in latent cells
    seed: int
    background_seed: int
    background: str
    negative: str
    method: str
    latent_hw: tuple[int, int]
    config: LMDConfig


@dataclass
class BoxResult:
    """One object's own generation, in the frame it was drawn in (before any shift)."""

    key: BoxKey
    cells: Cells  # where the object was drawn on the latent grid
    frames: torch.Tensor  # [steps + 1, C, h, w] latents after each step (frame 0 = noise)
    mask: torch.Tensor  # [h, w] bool
    attention: dict[str, torch.Tensor]  # guidance layer -> [guided steps, heads, pixels]
    attention_hw: dict[str, tuple[int, int]] = field(default_factory=dict)
    image: Image.Image | None = None


class BoxCache:
    """Least-recently-used store of `BoxResult`s (kept on the CPU), keyed by `BoxKey`."""

    def __init__(self, max_entries: int | None = 256):
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"`max_entries` must be at least 1 or None, got {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[BoxKey, BoxResult] = OrderedDict()

    def get(self, key: BoxKey) -> BoxResult | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, result: BoxResult) -> None:
        self._items[result.key] = result
        self._items.move_to_end(result.key)
        while self.max_entries is not None and len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def __contains__(self, key: BoxKey) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

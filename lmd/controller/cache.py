"""Per-box results as reusable objects, and `BoxCache`, which keeps them between renders.

A per-box result depends on the model, the object's name, its box size on the latent grid,
its seed, the background seed, the background prompt, the image's latent size, the scheduler
and the settings the per-box generation receives (`per_box.BoxPhase`: the method's per-box view, the
schedule, guidance, token and mask settings, the negative prompt); not on where the box is:
LMD draws every object centred and shifts it into place afterwards, so a moved object of the
same size is an exact hit. LMD+ draws in place; a hit for a moved LMD+ box is shifted by the
move (an approximation of a fresh draw).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch
from PIL import Image

from lmd.controller.noise import Cells


@dataclass(frozen=True)
class BoxKey:
    model: str
    name: str
    size: tuple[int, int]  # (w, h) in latent cells
    seed: int
    background_seed: int
    background: str
    latent_hw: tuple[int, int]
    phase: Hashable  # `per_box.BoxPhase`: every setting the per-box generation reads
    sampler: Hashable = ()  # the scheduler (`Backbone.sampler()`)


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


DEFAULT_MAX_BYTES = 512 * 2**20
"""The cache's default memory budget. An SD 1.5 object at 512 px in fp32 holds about 4.9 MB
(51 latent frames 3.3 MB, guidance attention 0.8 MB, its picture 0.8 MB): about 100 objects."""


Address = tuple[str, int]


def _storages(result: BoxResult) -> dict[Address, int]:
    """The memory a result holds: {(device, storage address): bytes}. Results drawn in one
    batch share their frames' storage; counting storages, not views, counts it once."""
    held: dict[Address, int] = {}
    tensors = [result.frames, result.mask, *result.attention.values()]
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.numel():
            storage = t.untyped_storage()
            held[(str(t.device), storage.data_ptr())] = storage.nbytes()
    if (image := result.image) is not None:
        held[("image", id(image))] = image.width * image.height * len(image.getbands())
    return held


class BoxCache:
    """Least-recently-used store of `BoxResult`s, keyed by `BoxKey`, within a memory budget.

    At most `max_bytes` of tensors and pictures (default `DEFAULT_MAX_BYTES`) and at most
    `max_entries` results are kept (None: no limit of that kind); the least recently used go
    first. A result larger than the whole budget is not kept.
    """

    def __init__(self, max_entries: int | None = 256, max_bytes: int | None = DEFAULT_MAX_BYTES):
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"`max_entries` must be at least 1 or None, got {max_entries}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"`max_bytes` must be at least 1 or None, got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[BoxKey, BoxResult] = OrderedDict()
        self._held: dict[BoxKey, dict[Address, int]] = {}
        self._users: dict[Address, int] = {}  # storage -> how many kept results hold it
        self._sizes: dict[Address, int] = {}  # storage -> bytes
        self.nbytes = 0
        """Bytes the kept results hold (shared storage counted once)."""

    def get(self, key: BoxKey) -> BoxResult | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, result: BoxResult) -> None:
        held = _storages(result)
        if self.max_bytes is not None and sum(held.values()) > self.max_bytes:
            return  # could never fit: keeping it would only push everything else out
        self._drop(result.key)
        self._items[result.key] = result
        self._held[result.key] = held
        for address, size in held.items():
            if self._users.get(address, 0) == 0:
                self.nbytes += size
                self._sizes[address] = size
            self._users[address] = self._users.get(address, 0) + 1
        while len(self._items) > 1 and self._over():
            self._drop(next(iter(self._items)))

    def _over(self) -> bool:
        too_many = self.max_entries is not None and len(self._items) > self.max_entries
        return too_many or (self.max_bytes is not None and self.nbytes > self.max_bytes)

    def _drop(self, key: BoxKey) -> None:
        if self._items.pop(key, None) is None:
            return
        for address in self._held.pop(key):
            self._users[address] -= 1
            if self._users[address] == 0:
                del self._users[address]
                self.nbytes -= self._sizes.pop(address)

    def __contains__(self, key: BoxKey) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        for key in list(self._items):
            self._drop(key)

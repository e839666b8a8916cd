"""A denoising phase as a method sees it, and `Hooks`: what a method changes in one.

A flow (one pass over the image, or LMD's per-box + compose + overall) runs phases; each
phase denoises rows of latents under one text per row. A method's `hooks(run, phase)` may
return `Hooks` for a phase:

- `processors()`: {attention layer name: wrap(inner) -> processor}, installed for the phase
  and removed after; `inner` is the processor the layer has (a user's, another hook's), so
  the hooks of several methods chain and every other layer keeps its own;
- `step(index, t)`: called before each step's denoiser calls (per-step state);
- `inputs(index)`: extra denoiser inputs for that step (`StepInputs`), or None;
- `predict(index, call)`: runs the step's guided denoiser call (`call()`, one counted
  prediction) and returns what the scheduler steps with; a hook may run extra passes first
  (ConsiStory's vanilla pass) and choose which output counts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lmd.controller.backbones.base import StepInputs
from lmd.controller.captions import Tokens
from lmd.controller.noise import Cells


@dataclass(frozen=True)
class PhaseObject:
    """One object of a row: its name, how the row's prompt says it, where it is."""

    name: str
    phrase: str  # as the prompt says it ("two cats" for an object drawn twice)
    cells: Cells  # its box on the latent grid
    xyxy: tuple[float, float, float, float]  # its box as fractions of the image
    tokens: Tokens | None = None  # its tokens in the row's prompt (None: not located)
    index: int = 0  # its box's index in the layout
    mask: Any = None  # [h, w] bool on the latent grid, where the flow has one (LMD's, placed)


@dataclass(frozen=True)
class PhaseRow:
    """One row of latents: its prompt and the objects it holds."""

    prompt: str
    objects: tuple[PhaseObject, ...] = ()


@dataclass(frozen=True)
class Phase:
    """What is denoised: `name` ("boxes", "overall" or "image"), one `PhaseRow` per latent
    row, on an image of `image_hw` pixels and a latent grid of `latent_hw` cells."""

    name: str
    rows: tuple[PhaseRow, ...]
    image_hw: tuple[int, int]
    latent_hw: tuple[int, int]
    steps: int


Wrap = Callable[[Any], Any]
"""`wrap(inner)` -> the attention processor that replaces `inner` on a layer."""


class Hooks:
    """No change: the base of every method's hooks (override what the method changes)."""

    def processors(self) -> dict[str, Wrap]:
        return {}

    def step(self, index: int, t) -> None:
        """Before the denoiser calls of step `index` (timestep `t`)."""

    def inputs(self, index: int) -> StepInputs | None:
        return None

    def predict(self, index: int, call: Callable[[], Any]) -> Any:
        """The model output step `index` steps with: `call()` runs one guided prediction."""
        return call()


@dataclass
class HookSet(Hooks):
    """Several hooks as one: processors chain (the later wraps the earlier), every hook sees
    every step, inputs merge (a later hook's keyword wins), predictions nest (the later runs
    the earlier's)."""

    parts: list[Hooks] = field(default_factory=list)

    def processors(self) -> dict[str, Wrap]:
        out: dict[str, Wrap] = {}
        for part in self.parts:
            for name, wrap in part.processors().items():
                if name in out:
                    earlier = out[name]
                    out[name] = lambda inner, w=wrap, e=earlier: w(e(inner))
                else:
                    out[name] = wrap
        return out

    def step(self, index: int, t) -> None:
        for part in self.parts:
            part.step(index, t)

    def inputs(self, index: int) -> StepInputs | None:
        given = [i for i in (p.inputs(index) for p in self.parts) if i is not None]
        if not given:
            return None
        return StepInputs(
            cond={k: v for i in given for k, v in i.cond.items()},
            uncond={k: v for i in given for k, v in i.uncond.items()},
            guidance={k: v for i in given for k, v in i.guidance.items()},
        )

    def predict(self, index: int, call: Callable[[], Any]) -> Any:
        for part in self.parts:
            call = functools.partial(part.predict, index, call)
        return call()


def combine(hooks: list[Hooks | None]) -> Hooks:
    present = [h for h in hooks if h is not None]
    if len(present) == 1:
        return present[0]
    return HookSet(present)

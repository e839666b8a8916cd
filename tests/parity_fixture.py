"""The paper-code reference runs of `tests/data/parity` as lmd sees them (no tests here).

A `Scenario` is one recorded run: its layout, seeds and settings as an `LMDConfig.paper()`,
and what the paper's code computed, as the trace names of `lmd.controller.trace`. A
`Comparison` is a trace that checks every tensor lmd reports against the recording as it
arrives, so a mismatch names the first tensor that differs and by how much. SAM is replaced
as the recordings replaced it, by two small segmenters with lmd's `Segmenter` interface.

Recording conventions (found while reaching parity; the data README words them loosely):
`boxN.mask` is the mask where the object was drawn (before the shift), `overall.step_latents`
is the scheduler's output before the frozen cells are reset, and `shift_offsets_in_latent_cells`
is the centring offset as a fraction of the image (x, y), not in cells.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from lmd.layouts.model import Box, Layout
from safetensors.torch import load_file

from lmd.controller import LMDConfig
from lmd.segment import check_prompts

DATA = Path(__file__).parent / "data" / "parity"
SCENARIOS = ("lmd", "lmd_article", "lmdplus", "lmd_threshold_8.44")
TOLERANCE = 1e-4  # relative, on latents, energies and offsets (float32 on the CPU)

# Trace names by kind, for the per-kind checks and the largest difference per kind.
KINDS = {
    "initial latents": r"box\d+\.initial_latents",
    "object latents": r"box\d+\.latents",
    "energies": r".*\.energy",
    "masks": r"box\d+\.mask",
    "offsets": r"box\d+\.offset",
    "composed": r"composed",
    "overall latents": r"overall\.latents",
    "final latents": r"final_latents",
    "image": r"image",
}


def kind_of(name: str) -> str | None:
    return next((k for k, pattern in KINDS.items() if re.fullmatch(pattern, name)), None)


@functools.cache
def pipeline(method: str):
    """The recordings' tiny model for `method` (`tiny-gligen` for lmd+), loaded once."""
    from lmd.models import load_pipeline

    folder = DATA / "models" / ("tiny-gligen" if method == "lmd+" else "tiny-sd")
    return load_pipeline(str(folder), method=method, device="cpu", dtype=torch.float32)


@dataclass
class Scenario:
    name: str
    spec: dict
    tensors: dict[str, torch.Tensor]

    @property
    def method(self) -> str:
        return self.spec["method"]

    @property
    def layout(self) -> Layout:
        w, h = self.spec["canvas"]
        boxes = [Box(**b) for b in self.spec["boxes"]]
        return Layout(
            boxes=boxes, background=self.spec["background"], negative=self.spec["negative"],
            width=w, height=h,
        )  # fmt: skip

    @property
    def seeds(self) -> dict:
        return {"seed": self.spec["background_seed"], "object_seeds": self.spec["object_seeds"]}

    def config(self, **changes) -> LMDConfig:
        """The recording's settings as `LMDConfig.paper()` (step indices are absolute there)."""
        guided = int(re.fullmatch(r"index < (\d+)", self.spec["guidance_step_indices"])[1])
        window = re.fullmatch(r"\[(\d+), (\d+)\)", self.spec["mask_attention_step_indices"])
        assert int(window[2]) == self.spec["steps"], "the mask window runs to the last step"
        settings = {
            "steps": self.spec["steps"], "guidance_steps": guided,
            "mask_attn_start": int(window[1]), "loss_threshold": self.spec["loss_threshold"],
        }  # fmt: skip
        return LMDConfig.paper(**{**settings, **changes})

    def segmenter(self):
        return BoxSegmenter() if self.method == "lmd+" else CoarseMaskSegmenter()

    def expected(self) -> dict[str, list[tuple[int | None, torch.Tensor]]]:
        """What the paper's code computed, by trace name: [(step, value), ...] in order."""
        t, out = self.tensors, {}
        lw = t["composed"].shape[-1]
        lh = t["composed"].shape[-2]
        for i, (ox, oy) in enumerate(self.spec["shift_offsets_in_latent_cells"]):
            out[f"box{i}.initial_latents"] = [(None, t[f"box{i}.initial_latents"])]
            out[f"box{i}.latents"] = list(enumerate(t[f"box{i}.step_latents"]))
            out[f"box{i}.mask"] = [(None, t[f"box{i}.mask"].bool())]
            out[f"box{i}.offset"] = [(None, torch.tensor([ox * lw, oy * lh]))]
        out["composed"] = [(None, t["composed"])]
        out["overall.latents"] = list(enumerate(t["overall.step_latents"]))
        out["final_latents"] = [(None, t["final_latents"])]
        out["image"] = [(None, t["final_image"])]
        for e in self.spec["energies"]:
            value = torch.tensor(e["energy"], dtype=torch.float32)
            out.setdefault(f"{e['phase']}.energy", []).append((e["step_index"], value))
        return out


@functools.cache
def scenario(name: str) -> Scenario:
    spec = json.loads((DATA / f"{name}.json").read_text())
    return Scenario(name, spec, load_file(str(DATA / f"{name}.safetensors")))


def error(name: str, value: torch.Tensor, ref: torch.Tensor) -> float:
    """How far `value` is from `ref`: mismatched cells for masks, levels for the image, and
    the largest difference relative to the reference's largest magnitude otherwise."""
    if value.shape != ref.shape:
        return math.inf
    if ref.dtype == torch.bool:
        return float((value.bool() != ref).sum())
    if ref.dtype == torch.uint8:
        return float((value.int() - ref.int()).abs().max())
    scale = float(ref.abs().max()) or 1.0
    return float((value.float() - ref.float()).abs().max()) / scale


def allowed(name: str, ref: torch.Tensor) -> float:
    if ref.dtype == torch.bool:
        return 0.0  # masks equal
    if ref.dtype == torch.uint8:
        return 1.0  # the picture within 1/255
    return TOLERANCE


class StopRender(Exception):  # noqa: N818 (a control-flow signal)
    """Raised by a `Comparison` to end a render once it has seen what a test needs."""


@dataclass
class Difference:
    name: str
    index: int  # which value of that name (0-based)
    step: int | None
    error: float
    detail: str

    def __str__(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        return f"{self.name}[{self.index}]{at}: {self.detail}"


@dataclass
class Comparison:
    """A trace comparing each reported tensor with the recording as it arrives.

    `stop_on_difference` ends the render at the first difference; `stop_after` (a name, or
    a name and a step) after that value; `then` also receives every value (a segmenter).
    """

    expected: dict[str, list[tuple[int | None, torch.Tensor]]]
    stop_on_difference: bool = False
    stop_after: str | tuple[str, int] | None = None
    then: object = None
    seen: Counter = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)
    worst: dict[str, float] = field(default_factory=dict)  # largest error by kind

    def __call__(self, name: str, value: torch.Tensor, step: int | None = None) -> None:
        if self.then is not None:
            self.then(name, value, step)
        refs = self.expected.get(name)
        if refs is not None:
            k = self.seen[name]
            self.seen[name] += 1
            if k >= len(refs):
                self._differ(name, k, step, math.inf, "the paper's code has no such value")
            else:
                ref_step, ref = refs[k]
                err = error(name, value, ref)
                kind = kind_of(name)
                self.worst[kind] = max(self.worst.get(kind, 0.0), err)
                if ref_step != step:
                    detail = f"the paper's code has it at step {ref_step}"
                    self._differ(name, k, step, math.inf, detail)
                elif err > allowed(name, ref):
                    self._differ(name, k, step, err, _describe(value, ref, err))
        if self.stop_after in (name, (name, step)):
            raise StopRender(name)

    def _differ(self, name, index, step, err, detail) -> None:
        self.differences.append(Difference(name, index, step, err, detail))
        if self.stop_on_difference:
            raise StopRender(name)

    def finish(self) -> Comparison:
        """Record every recorded value lmd never reported (call after a complete render)."""
        for name, refs in self.expected.items():
            for k in range(self.seen[name], len(refs)):
                missing = Difference(name, k, refs[k][0], math.inf, "lmd never computed it")
                self.differences.append(missing)
        return self

    @property
    def first(self) -> Difference | None:
        return self.differences[0] if self.differences else None

    def report(self) -> str:
        if not self.differences:
            return "no difference"
        more = len(self.differences) - 1
        return f"first difference: {self.first}" + (f" (and {more} more)" if more else "")


def _describe(value: torch.Tensor, ref: torch.Tensor, err: float) -> str:
    if ref.dtype == torch.bool:
        return f"{int(err)} of {ref.numel()} cells differ"
    if ref.dtype == torch.uint8:
        return f"pixels differ by up to {int(err)} levels"
    if ref.numel() == 1:
        return f"{float(value):.7g} where the paper's code has {float(ref):.7g} ({err:.2e})"
    return f"largest difference {err:.2e} relative to the reference's magnitude"


class CoarseMaskSegmenter:
    """SAM as the lmd recordings replaced it: each object's mask is its coarse attention mask.

    The coarse masks come from the render's own trace (`box{i}.coarse_mask`, reported just
    before the segmenter is called, in the same order as the images); each is brought to the
    image by nearest upsampling and returned three times with confidence 1.
    """

    def __init__(self) -> None:
        self.coarse: list[torch.Tensor] = []

    def __call__(self, name: str, value: torch.Tensor, step: int | None = None) -> None:
        if name.endswith(".coarse_mask"):
            self.coarse.append(value)

    def segment(self, images, *, points=None, boxes=None):
        height, width = check_prompts(images, points, boxes)
        coarse, self.coarse = self.coarse[-len(images) :], []
        up = F.interpolate(torch.stack(coarse)[:, None].float(), size=(height, width))
        return up.bool().expand(-1, 3, -1, -1), torch.ones(len(images), 3)


class BoxSegmenter:
    """SAM as the lmd+ recording replaced it: the prompt box, three times, with confidence 1."""

    def segment(self, images, *, points=None, boxes=None):
        height, width = check_prompts(images, points, boxes)
        if boxes is None:
            raise ValueError("BoxSegmenter answers box prompts only")
        masks = torch.zeros(len(images), 3, height, width, dtype=torch.bool)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes, strict=True):
            mask[:, round(y0) : round(y1), round(x0) : round(x1)] = True
        return masks, torch.ones(len(images), 3)

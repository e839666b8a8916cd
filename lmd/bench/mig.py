"""`lmd bench mig`: COCO-MIG's instance success rate and mean IoU, for any method.

COCO-MIG (Zhou et al., MIGC, CVPR 2024, Sec. 4.1) asks for 2 to 6 instances, each with a
colour, on boxes, and scores each instance the way its evaluation script does (LeyRio/MIG_Bench
at 063ec4595f16632ab09b9ef71a7be00345ce1ead, `eval_mig.py`, "eval:N" = line N; read, not
copied: its licence is non-commercial):

1. the detector looks for the instance's label, without its colour (eval:216-229); lmd asks
   OWL-ViT, as `lmd bench stage2` does ("a photo of a <label>", scores >= 0.15), where the
   authors ask Grounding DINO (box and text thresholds 0.25); detections overlapping a better
   one by IoU >= 0.8 are dropped (eval:221, 238-246);
2. the instance's IoU is the best IoU of a detection with its box (eval:248-259), 0 without
   a detection; below 0.5 it is misplaced and that IoU still enters the mean IoU (eval:260-262);
3. a placed instance is segmented by SAM prompted with its box (the benchmark's box, not the
   detection, eval:288-292; the best-scoring of SAM's 3 masks, eval:276-281); it has the right
   colour when at least 0.2 of the mask's pixels fall in the colour's HSV range (OpenCV's 8-bit
   HSV: hue 0..180, saturation and value 0..255; the ranges of eval:206-214; eval:317-333).
   A wrong colour sets its IoU to 0 (eval:329). Without a segmenter lmd counts the whole box;
4. instance success rate: the share of instances placed with the right colour; mean IoU: the
   mean of the instances' IoUs; per level (number of instances) and over all instances
   (eval:474-484, 528-546).

The prompts are lmd's seeded COCO-MIG-style layouts (`mig_layouts`), not COCO-MIG's own 800.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from lmd.bench.mig_layouts import MAX_INSTANCES, MIN_INSTANCES, MigPrompt
from lmd.bench.stage2 import SCORE_THRESHOLD, Detection, class_aware_nms, iou, keep_confident

IOU_THRESHOLD = 0.5
"""An instance is placed when a detection overlaps its box by IoU >= 0.5 (eval:260)."""
NMS_IOU = 0.8
"""Detections overlapping a better one of the same label by IoU >= 0.8 are dropped (eval:221)."""
COLOUR_SHARE = 0.2
"""The right colour: at least this share of the instance's mask in its HSV range (eval:322)."""
COLOUR_RANGES: dict[str, tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...]] = {
    "red": (((0, 50, 70), (9, 255, 255)), ((159, 50, 70), (180, 255, 255))),
    "blue": (((90, 50, 70), (128, 255, 255)),),
    "yellow": (((25, 50, 70), (35, 255, 255)),),
    "green": (((36, 50, 70), (89, 255, 255)),),
    "black": (((0, 0, 0), (180, 255, 30)),),
    "white": (((0, 0, 221), (180, 43, 255)),),
    "brown": (((6, 43, 35), (25, 255, 255)),),
}
"""Each colour's (lower, upper) HSV bounds, inclusive, OpenCV's 8-bit scale (eval:206-214)."""


def query(label: str) -> str:
    """The detector's text query for a label (lmd's OWL-ViT phrasing, as in stage 2)."""
    return f"a photo of a {label}"


HSV_SHIFT = 12
"""OpenCV's fixed-point precision for 8-bit RGB -> HSV (imgproc color_hsv: hsv_shift = 12)."""


def hsv(image: Image.Image) -> np.ndarray:
    """[H, W, 3] uint8 HSV exactly as OpenCV's `cvtColor(..., COLOR_BGR2HSV)` computes it for
    8-bit images (hue in degrees / 2, 0..179; saturation 255 * (max - min) / max; value max),
    with its fixed-point divisions: COCO-MIG's ranges are on that scale."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v, diff = rgb.max(axis=-1), rgb.max(axis=-1) - rgb.min(axis=-1)
    half = 1 << (HSV_SHIFT - 1)
    index = np.arange(256, dtype=np.float64)
    with np.errstate(divide="ignore"):
        sdiv = np.where(index > 0, np.rint((255 << HSV_SHIFT) / index), 0).astype(np.int64)
        hdiv = np.where(index > 0, np.rint((180 << HSV_SHIFT) / (6 * index)), 0).astype(np.int64)
    s = (diff * sdiv[v] + half) >> HSV_SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + half) >> HSV_SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


def colour_share(hsv_image: np.ndarray, mask: np.ndarray, colour: str) -> float:
    """The share of `mask`'s pixels whose HSV falls in `colour`'s range (0 for an empty mask)."""
    if colour not in COLOUR_RANGES:
        raise ValueError(f"no HSV range for colour {colour!r}")
    inside = np.zeros(mask.shape, dtype=bool)
    for lower, upper in COLOUR_RANGES[colour]:
        inside |= np.all((hsv_image >= lower) & (hsv_image <= upper), axis=-1)
    total = int(mask.sum())
    return float((inside & mask).sum() / total) if total else 0.0


@dataclass(frozen=True)
class InstanceScore:
    """One instance of one picture: its best IoU, whether it was placed and coloured."""

    prompt: int
    level: int
    name: str
    iou: float
    placed: bool
    coloured: bool

    @property
    def success(self) -> bool:
        return self.placed and self.coloured

    @property
    def miou(self) -> float:
        """What it adds to the mean IoU: its IoU, or 0 when placed with a wrong colour."""
        return 0.0 if self.placed and not self.coloured else self.iou

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt, "level": self.level, "name": self.name,
            "iou": round(self.iou, 4), "placed": self.placed, "coloured": self.coloured,
        }  # fmt: skip


def best_iou(detections: Sequence[Detection], box: tuple[float, ...]) -> float:
    """The best IoU of `detections` (kept and suppressed as COCO-MIG does) with `box` (pixels)."""
    kept = class_aware_nms(keep_confident(detections, SCORE_THRESHOLD), NMS_IOU)
    return max((iou(d.box, box) for d in kept), default=0.0)


def score_picture(
    prompt: MigPrompt,
    image_hw: tuple[int, int],
    detections: Sequence[Detection],
    colour_ok: Callable[[int], bool],
) -> list[InstanceScore]:
    """Score every instance of `prompt` in a picture of `image_hw` pixels: `detections` are the
    detector's boxes for the labels' queries; `colour_ok(i)` says whether instance i, placed,
    has its colour (asked only for placed instances)."""
    h, w = image_hw
    out = []
    for i, inst in enumerate(prompt.instances):
        x0, y0, x1, y1 = inst.box
        box = (x0 * w, y0 * h, x1 * w, y1 * h)
        mine = [d for d in detections if d.name == query(inst.label)]
        best = best_iou(mine, box)
        placed = best >= IOU_THRESHOLD
        coloured = placed and colour_ok(i)
        out.append(InstanceScore(prompt.index, prompt.level, inst.name, best, placed, coloured))
    return out


def box_mask(image_hw: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """The pixels of `box` (x0, y0, x1, y1 fractions) as a boolean mask."""
    h, w = image_hw
    mask = np.zeros((h, w), dtype=bool)
    mask[int(box[1] * h) : int(box[3] * h), int(box[0] * w) : int(box[2] * w)] = True
    return mask


def judge(image: Image.Image, prompt: MigPrompt, detector, segmenter=None) -> list[InstanceScore]:
    """Detect, segment and score one picture of `prompt`."""
    labels = list(dict.fromkeys(inst.label for inst in prompt.instances))
    (detections,) = detector.detect([image], [[query(label) for label in labels]])
    hw = (image.height, image.width)
    colours = hsv(image)

    def colour_ok(i: int) -> bool:
        inst = prompt.instances[i]
        if segmenter is None:
            mask = box_mask(hw, inst.box)
        else:
            x0, y0, x1, y1 = inst.box
            box = (x0 * image.width, y0 * image.height, x1 * image.width, y1 * image.height)
            masks, scores = segmenter.segment([image], boxes=[box])
            mask = masks[0, int(scores[0].argmax())].cpu().numpy()
        return colour_share(colours, mask, inst.colour) >= COLOUR_SHARE

    return score_picture(prompt, hw, detections, colour_ok)


@dataclass
class MigReport:
    """One method's instance scores over the benchmark's pictures."""

    method: str
    scores: list[InstanceScore] = field(default_factory=list)

    def at(self, level: int | None = None) -> tuple[int, float | None, float | None]:
        """(instances, mean IoU, instance success rate) at `level` (None: every level)."""
        mine = [s for s in self.scores if level is None or s.level == level]
        if not mine:
            return 0, None, None
        n = len(mine)
        return n, sum(s.miou for s in mine) / n, sum(s.success for s in mine) / n

    def to_json(self) -> dict:
        levels = {f"L{k}": self.at(k) for k in LEVELS}
        n, miou, isr = self.at()
        return {
            "method": self.method, "instances": n, "miou": miou, "success_rate": isr,
            "levels": {k: {"instances": v[0], "miou": v[1], "success_rate": v[2]}
                       for k, v in levels.items()},
            "scores": [s.to_json() for s in self.scores],
        }  # fmt: skip


LEVELS = tuple(range(MIN_INSTANCES, MAX_INSTANCES + 1))


def table(reports: Sequence[MigReport]) -> list[str]:
    """The methods as rows, mean IoU then instance success rate per level and overall, as the
    MIGC README's COCO-MIG table; '-' where a level has no instance."""
    heads = [f"L{k}" for k in LEVELS] + ["all"]
    width = max([len("instances"), *(len(r.method) for r in reports)])

    def cells(values) -> str:
        shown = ("-" if v is None else v if isinstance(v, str) else f"{v:.2f}" for v in values)
        return " ".join(f"{v:>5}" for v in shown)

    group = len(cells(heads))
    lines = [
        f"{'':<{width}}  {'mean IoU':<{group}}   instance success rate",
        f"{'method':<{width}}  {cells(heads)}   {cells(heads)}",
    ]
    for r in reports:
        stats = [r.at(k) for k in LEVELS] + [r.at()]
        lines.append(
            f"{r.method:<{width}}  {cells(s[1] for s in stats)}   {cells(s[2] for s in stats)}"
        )
    if reports:
        counts = [reports[0].at(k)[0] for k in LEVELS] + [reports[0].at()[0]]
        lines.append(f"{'instances':<{width}}  {' '.join(f'{c:>5}' for c in counts)}")
    return lines


def run_method(
    renderer,
    prompts: Sequence[MigPrompt],
    detector,
    segmenter=None,
    *,
    seed: int = 0,
    method: str = "",
    on_picture: Callable[[int, Image.Image, MigPrompt], None] | None = None,
    progress=None,
) -> MigReport:
    """Draw every prompt with `renderer` (prompt i with seed `seed + i`) and score it."""
    report = MigReport(method)
    for prompt in prompts:
        result = renderer.render(prompt.layout(), seed=seed + prompt.index, progress=progress)
        if on_picture is not None:
            on_picture(prompt.index, result.image, prompt)
        report.scores += judge(result.image, prompt, detector, segmenter)
    return report

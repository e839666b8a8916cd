"""COCO-MIG-style prompts: 2 to 6 coloured instances on boxes, drawn from a seeded generator.

COCO-MIG (Zhou et al., MIGC, CVPR 2024, Sec. 4.1; the prompts in limuloo/MIGC's
`bench_file/mig_bench.txt`, boxes in `bench_file/mig_bench_anno.yaml`) takes 800 COCO images,
keeps their boxes and labels, gives each instance one of seven colours, and writes the prompt
"a photo of a <colour1> <label1> and a <colour2> <label2> and ...", 160 prompts per level
L2..L6 (the number of instances). Its boxes are COCO's; lmd ships no COCO data, so here a
seeded generator draws the labels (COCO's 80 categories), colours and boxes, level after
level: prompt i has 2 + i % 5 instances. Each instance is a box of the layout named
"a <colour> <label>", as the benchmark's instance descriptions are.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from lmd.layouts import Box, Layout

COLOURS = ("red", "blue", "yellow", "green", "black", "white", "brown")
"""COCO-MIG's seven colours (mig_bench.txt; the colour ranges of its evaluation, `mig.py`)."""
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""The 80 COCO object categories, by their COCO names."""
MIN_INSTANCES, MAX_INSTANCES = 2, 6
"""COCO-MIG's levels L2..L6."""
BOX_WIDTH = (0.15, 0.6)
"""A box's width as a fraction of the image, drawn uniformly."""
BOX_ASPECT = (0.5, 2.0)
"""A box's height / width, drawn log-uniformly; the height is kept within `BOX_HEIGHT`."""
BOX_HEIGHT = (0.1, 0.8)
CANVAS = 512
"""The layouts' canvas (COCO-MIG's images are 512 x 512)."""
BACKGROUND = "a photo"
"""The layout's background: lmd's prompts read "a photo with a red car, ...", COCO-MIG's
"a photo of a red car and ..."."""


@dataclass(frozen=True)
class Instance:
    """One instance to draw: its colour, its COCO label, its box (x0, y0, x1, y1) fractions."""

    colour: str
    label: str
    box: tuple[float, float, float, float]

    @property
    def name(self) -> str:
        return f"a {self.colour} {self.label}"


@dataclass(frozen=True)
class MigPrompt:
    """One benchmark prompt: its instances in order."""

    index: int
    instances: tuple[Instance, ...]

    @property
    def level(self) -> int:
        """The number of instances (COCO-MIG's level L2..L6)."""
        return len(self.instances)

    @property
    def caption(self) -> str:
        return "a photo of " + " and ".join(i.name for i in self.instances)

    def layout(self, size: int = CANVAS) -> Layout:
        """The instances as a layout on a `size` x `size` canvas."""
        boxes = []
        for inst in self.instances:
            x0, y0, x1, y1 = (v * size for v in inst.box)
            boxes.append(Box(name=inst.name, x=x0, y=y0, w=x1 - x0, h=y1 - y0))
        return Layout(boxes=boxes, background=BACKGROUND, negative="", width=size, height=size)


def mig_prompts(count: int, seed: int = 0) -> list[MigPrompt]:
    """`count` prompts, prompt i with 2 + i % 5 instances (the levels take turns), each a
    random colour and COCO label on a random box; the same `seed` gives the same prompts."""
    if count < 1:
        raise ValueError(f"`prompts` must be at least 1 but is {count}")
    rng = random.Random(seed)
    span = MAX_INSTANCES - MIN_INSTANCES + 1
    return [
        MigPrompt(i, tuple(_instance(rng) for _ in range(MIN_INSTANCES + i % span)))
        for i in range(count)
    ]


def _instance(rng: random.Random) -> Instance:
    w = rng.uniform(*BOX_WIDTH)
    aspect = math.exp(rng.uniform(math.log(BOX_ASPECT[0]), math.log(BOX_ASPECT[1])))
    h = min(max(w * aspect, BOX_HEIGHT[0]), BOX_HEIGHT[1])
    x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    box = tuple(round(v * CANVAS) / CANVAS for v in (x0, y0, x0 + w, y0 + h))  # whole pixels
    return Instance(rng.choice(COLOURS), rng.choice(COCO_CLASSES), box)

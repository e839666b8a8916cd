"""The LMD benchmark's image-level evaluation (Lian et al. 2023, stage 2): an open-vocabulary
detector (OWL-ViT) looks for the caption's objects in each picture, and the same four
predicates as stage 1 are checked on what it finds.

As in the paper's evaluation script: each caption becomes one or two text queries
("a photo of a cat"); detections are kept at score >= 0.15, then class-aware NMS at IoU 0.15
(a box is dropped when it overlaps a better one of its class by IoU >= 0.15); then
- negation: no detection of the object;  numeracy: exactly N;
- attribution: at least one detection of each coloured object, queried with its colour;
- spatial: the centres of each class's first (best) detection, strictly in the right order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lmd.bench.stage1 import (
    CLASSES,
    COLOURS,
    NUMBERS,
    PREFIX,
    TASKS,
    Stage1Report,
    TaskScore,
    with_article,
)
from lmd.layouts.words import plural

SCORE_THRESHOLD = 0.15
NMS_IOU = 0.15
# (first side, second side) -> (centre axis: 0 = x, 1 = y, whether the first comes first)
_ORDER = {("left", "right"): (0, True), ("right", "left"): (0, False),
          ("top", "bottom"): (1, True), ("bottom", "top"): (1, False)}  # fmt: skip
_SINGULAR = {plural(c): c for c in CLASSES}
_CLASS = "|".join(CLASSES)
_PLURALS = "|".join(_SINGULAR)
_ARTICLE = r"an? (?:%s)"
_NEGATION = re.compile(rf"^{PREFIX} without ({_PLURALS})$")
_NUMERACY = re.compile(rf"^{PREFIX} with ({'|'.join(NUMBERS)}) ({_CLASS}|{_PLURALS})$")
_COLOURED = rf"an? (?:{'|'.join(COLOURS)}) (?:{_CLASS})"
_ATTRIBUTION = re.compile(rf"^{PREFIX} with ({_COLOURED}) and ({_COLOURED})$")
_SIDE = "left|right|top|bottom"
_SPATIAL = re.compile(
    rf"^{PREFIX} with ({_ARTICLE % _CLASS}) on the ({_SIDE}) and ({_ARTICLE % _CLASS}) on the "
    rf"({_SIDE})$"
)


@dataclass(frozen=True)
class Detection:
    """One detector box: the query text it answers, its score, (x0, y0, x1, y1) in pixels."""

    name: str
    score: float
    box: tuple[float, float, float, float]

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)


@dataclass(frozen=True)
class Query:
    """What a benchmark caption asks the detector, and what its answer must satisfy."""

    task: str
    texts: tuple[str, ...]  # the detector's text queries, in order
    names: tuple[str, ...]  # the phrase each query's detections are matched by
    count: int | None = None  # negation / numeracy: exactly this many
    axis: int | None = None  # spatial
    first_before: bool = True  # spatial: the first object's centre is the smaller

    def check(self, detections: Sequence[Detection]) -> bool:
        """The task's predicate on detections already thresholded and suppressed."""
        if self.task in ("negation", "numeracy"):
            return count(detections, self.names[0]) == self.count
        if self.task == "attribution":
            return all(count(detections, name) >= 1 for name in self.names)
        first = [first_box(detections, name) for name in self.names]
        if first[0] is None or first[1] is None:
            return False
        c1, c2 = first[0].center[self.axis], first[1].center[self.axis]
        return c1 < c2 if self.first_before else c1 > c2


def query_for(caption: str) -> Query | None:
    """The detector query for an LMD benchmark caption; None for any other caption."""
    caption = " ".join(caption.split())
    if m := _NEGATION.match(caption):
        name = _SINGULAR[m[1]]
        return Query("negation", (f"a photo of {with_article(name)}",), (name,), count=0)
    if m := _NUMERACY.match(caption):
        name = _SINGULAR.get(m[2], m[2])
        number = NUMBERS.index(m[1]) + 1
        return Query("numeracy", (f"a photo of {with_article(name)}",), (name,), count=number)
    if m := _ATTRIBUTION.match(caption):
        names = (m[1], m[2])  # "a red car": the colour is part of the query
        return Query("attribution", tuple(f"a photo of {n}" for n in names), names)
    if m := _SPATIAL.match(caption):
        if (m[2], m[4]) not in _ORDER or m[1] == m[3]:
            return None
        axis, first = _ORDER[(m[2], m[4])]
        names = (m[1], m[3])  # "a cat"
        texts = tuple(f"a photo of {n}" for n in names)
        return Query("spatial", texts, names, axis=axis, first_before=first)
    return None


def count(detections: Iterable[Detection], name: str) -> int:
    """Detections whose query contains `name` (the paper's `count`)."""
    return sum(name in d.name for d in detections)


def first_box(detections: Iterable[Detection], name: str) -> Detection | None:
    """The first detection of `name` as a whole last word (the paper's `get_box`)."""
    return next((d for d in detections if f"{name} " in d.name or d.name.endswith(name)), None)


def keep_confident(detections: Iterable[Detection], threshold: float = SCORE_THRESHOLD):
    """Detections scoring at least `threshold` (>=, as the paper; transformers keeps >)."""
    return [d for d in detections if d.score >= threshold]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def class_aware_nms(detections: Sequence[Detection], threshold: float = NMS_IOU):
    """Per query, best first: a detection is dropped when its IoU with a kept one of the same
    query is >= `threshold`. The result lists query after query, each best first (ties keep
    their order)."""
    kept: list[Detection] = []
    for name in dict.fromkeys(d.name for d in detections):
        ranked = sorted((d for d in detections if d.name == name), key=lambda d: -d.score)
        mine: list[Detection] = []
        for d in ranked:
            if all(iou(d.box, k.box) < threshold for k in mine):
                mine.append(d)
        kept += mine
    return kept


def judge(query: Query, detections: Sequence[Detection]) -> tuple[bool, list[Detection]]:
    """Whether the picture passes, and the detections the predicate saw."""
    final = class_aware_nms(keep_confident(detections))
    return query.check(final), final


@dataclass
class ImageResult:
    """One scored picture."""

    job: str
    caption: str
    task: str
    passed: bool
    detections: list[Detection] = field(default_factory=list)

    def to_json(self) -> dict:
        found = [{"name": d.name, "score": round(d.score, 4),
                  "box": [round(v, 1) for v in d.box]} for d in self.detections]  # fmt: skip
        return {"job": self.job, "caption": self.caption, "task": self.task,
                "passed": self.passed, "detections": found}  # fmt: skip


@dataclass
class Stage2Report(Stage1Report):
    """Per-task accuracy over the pictures, and each picture's result."""

    results: list[ImageResult] = field(default_factory=list)


def report(results: Iterable[ImageResult]) -> Stage2Report:
    out = Stage2Report({task: TaskScore(task) for task in TASKS})
    for r in results:
        out.tasks[r.task].total += 1
        out.tasks[r.task].correct += r.passed
        out.results.append(r)
    return out


@dataclass
class BatchJobs:
    """The pictures of a batch that stage 2 can score, and what it must leave out."""

    scorable: list[tuple[str, str, Query, Path]]  # (job folder, caption, query, image file)
    not_drawn: int = 0  # failed or pending jobs: no picture
    not_benchmark: int = 0  # pictures whose caption is not a benchmark caption


def batch_jobs(drawn) -> BatchJobs:
    """Which of a batch's pictures (`lmd.batch.drawn_jobs(folder)`) show benchmark captions."""
    found = BatchJobs([], not_drawn=drawn.not_drawn)
    for job, caption, image in drawn.drawn:
        if (query := query_for(caption)) is None:
            found.not_benchmark += 1
        else:
            found.scorable.append((job, caption, query, image))
    return found


def score_batch(detector, jobs: BatchJobs, *, batch_size: int = 8, progress=None) -> Stage2Report:
    """Detect and judge every scorable picture, `batch_size` pictures per detector call."""
    from PIL import Image

    results: list[ImageResult] = []
    todo = jobs.scorable
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images = []
        for *_, path in chunk:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        found = detector.detect(images, [query.texts for _, _, query, _ in chunk])
        for (job, caption, query, _), detections in zip(chunk, found, strict=True):
            passed, final = judge(query, detections)
            results.append(ImageResult(job, caption, query.task, passed, final))
        if progress is not None:
            progress(len(results), len(todo))
    return report(results)

"""The LMD stage-1 benchmark: 400 captions in four tasks, each layout checked by a predicate.

Reproduces the benchmark of Lian et al. (2023), Sec. 4 ("LMD benchmark"): negation (10 classes
x 10 repeats), generative numeracy (one..five of each class x 2 repeats), attribute binding
(100 seeded colour pairs) and spatial relationships (25 seeds x left/right/top/bottom). The
captions are generated here with the benchmark's seeds, so a published reply file lines up.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lmd.layouts import Layout
from lmd.layouts.words import plural

PREFIX = "A realistic photo of a scene"
CLASSES = ("backpack", "book", "bottle", "bowl", "car", "cat", "chair", "cup", "dog", "laptop")
COLOURS = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
    "gray",
)  # fmt: skip
NUMBERS = ("one", "two", "three", "four", "five")
TASKS = ("negation", "numeracy", "attribution", "spatial")
# (this object's side, the other's side, centre axis: 0 = x, 1 = y, the first comes before)
SIDES = (("left", "right", 0, True), ("right", "left", 0, False),
         ("top", "bottom", 1, True), ("bottom", "top", 1, False))  # fmt: skip


@dataclass(frozen=True)
class BenchPrompt:
    """One benchmark caption and what its layout must satisfy."""

    task: str
    caption: str
    check: Callable[[Layout], bool] = field(compare=False, repr=False)


@dataclass
class TaskScore:
    task: str
    correct: int = 0
    total: int = 0

    @property
    def percent(self) -> float:
        return 100.0 * self.correct / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.task}: {self.correct}/{self.total} ({self.percent:.1f}%)"


@dataclass
class Stage1Report:
    tasks: dict[str, TaskScore]
    failures: list[tuple[BenchPrompt, Layout | None]] = field(default_factory=list)

    @property
    def overall(self) -> float:
        total = sum(t.total for t in self.tasks.values())
        return 100.0 * sum(t.correct for t in self.tasks.values()) / total if total else 0.0

    def lines(self) -> list[str]:
        """One line per task, then `overall: 99.0%`."""
        scored = [str(t) for t in self.tasks.values() if t.total]
        return [*scored, f"overall: {self.overall:.1f}%"]


# --- captions ---------------------------------------------------------------------------


def benchmark_prompts(limit: int | None = None) -> list[BenchPrompt]:
    """The 400 benchmark prompts in the benchmark's order; `limit` keeps the first N per task."""
    tasks = (_negation(), _numeracy(), _attribution(), _spatial())
    return [p for task in tasks for p in task[:limit]]


def _negation(repeat: int = 10) -> list[BenchPrompt]:
    out = []
    for cls in CLASSES:
        caption = f"{PREFIX} without {plural(cls)}"
        out += [BenchPrompt("negation", caption, _count_is(cls, 0))] * repeat
    return out


def _numeracy(repeat: int = 2) -> list[BenchPrompt]:
    out = []
    for n, word in enumerate(NUMBERS, 1):
        for cls in CLASSES:
            caption = f"{PREFIX} with {word} {cls if n == 1 else plural(cls)}"
            out += [BenchPrompt("numeracy", caption, _count_is(cls, n))] * repeat
    return out


def _attribution(n_prompts: int = 100) -> list[BenchPrompt]:
    out = []
    for seed in range(n_prompts):
        rng = np.random.RandomState(seed)  # the benchmark seeds numpy's legacy generator
        colour1, colour2 = rng.choice(COLOURS, 2, replace=False)
        cls1, cls2 = rng.choice(CLASSES, 2, replace=False)
        pair = f"{with_article(colour1)} {cls1} and {with_article(colour2)} {cls2}"
        caption = f"{PREFIX} with {pair}"
        check = _both_present(f"{colour1} {cls1}", f"{colour2} {cls2}")
        out.append(BenchPrompt("attribution", caption, check))
    return out


def _spatial(n_seeds: int = 25) -> list[BenchPrompt]:
    out = []
    for seed in range(n_seeds):
        rng = np.random.RandomState(seed)
        for side1, side2, axis, first in SIDES:
            cls1, cls2 = rng.choice(CLASSES, 2, replace=False)
            placed = f"{with_article(cls1)} on the {side1}"
            caption = f"{PREFIX} with {placed} and {with_article(cls2)} on the {side2}"
            out.append(BenchPrompt("spatial", caption, _ordered(cls1, cls2, axis, first)))
    return out


def with_article(word: str) -> str:
    """`word` after `a` or `an`, as the benchmark's captions write it."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


# --- predicates -------------------------------------------------------------------------


def _matcher(phrase: str) -> re.Pattern:
    """`phrase` as whole words in a box name, its last noun singular or plural."""
    return re.compile(rf"\b{re.escape(phrase)}(?:e?s)?\b", re.I)


def _objects(layout: Layout) -> list:
    """The boxes that stand for objects: one spanning the whole canvas is background, as in
    the benchmark's own scorer."""
    return [b for b in layout.boxes if not (b.w >= layout.width and b.h >= layout.height)]


def _count(layout: Layout, phrase: str) -> int:
    pattern = _matcher(phrase)
    return sum(bool(pattern.search(b.name)) for b in _objects(layout))


def _count_is(cls: str, n: int) -> Callable[[Layout], bool]:
    """Numeracy and negation: exactly `n` boxes of the class."""
    return lambda layout: _count(layout, cls) == n


def _both_present(phrase1: str, phrase2: str) -> Callable[[Layout], bool]:
    """Attribution: each coloured object has a box named with its colour."""
    return lambda layout: _count(layout, phrase1) >= 1 and _count(layout, phrase2) >= 1


def _ordered(cls1: str, cls2: str, axis: int, first: bool) -> Callable[[Layout], bool]:
    """Spatial: the first box of each class, centres strictly ordered along `axis`."""

    def check(layout: Layout) -> bool:
        boxes = _objects(layout)
        box1 = next((b for b in boxes if _matcher(cls1).search(b.name)), None)
        box2 = next((b for b in boxes if _matcher(cls2).search(b.name)), None)
        if box1 is None or box2 is None:
            return False
        c1, c2 = box1.center[axis], box2.center[axis]
        return c1 < c2 if first else c1 > c2

    return check


# --- scoring ----------------------------------------------------------------------------


def score(prompts: Sequence[BenchPrompt], layouts: Iterable[Layout | None]) -> Stage1Report:
    """Check each layout (None: no usable layout, a failure) against its prompt."""
    report = Stage1Report({task: TaskScore(task) for task in TASKS})
    for prompt, layout in zip(prompts, layouts, strict=True):
        ok = layout is not None and prompt.check(layout)
        report.tasks[prompt.task].total += 1
        report.tasks[prompt.task].correct += ok
        if not ok:
            report.failures.append((prompt, layout))
    return report


def replies_for(
    prompts: Sequence[BenchPrompt], responses: Mapping[str, Sequence[str]]
) -> list[str]:
    """The reply for each prompt from a `{caption: [reply, ...]}` file; the k-th repeat of a
    caption takes its k-th reply. Raises `ValueError` naming a caption that has too few."""
    seen: Counter[str] = Counter()
    out = []
    for prompt in prompts:
        k = seen[prompt.caption]
        seen[prompt.caption] += 1
        replies = responses.get(prompt.caption)
        if replies is None:
            raise ValueError(f"the responses file has no replies for {prompt.caption!r}")
        if isinstance(replies, str):
            replies = [replies]
        if k >= len(replies):
            raise ValueError(
                f"the responses file has {len(replies)} replies for {prompt.caption!r}, "
                f"the benchmark asks it {k + 1} times"
            )
        out.append(replies[k])
    return out


def parse_replies(replies: Iterable[str]) -> Iterator[Layout | None]:
    """Each reply read as a layout on the 512x512 canvas; None when it cannot be read."""
    import warnings

    from lmd.layouts import LayoutParseError, LayoutWarning, parse

    for reply in replies:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LayoutWarning)
            try:
                yield parse(reply, 512, 512)
            except LayoutParseError:
                yield None


def ask_llm(planner, prompts: Sequence[BenchPrompt]) -> Iterator[Layout | None]:
    """Each prompt planned by `planner` (a `lmd.prompts.Planner`), repeats sampled independently.

    A caption the LLM never answers readably is a failure (None); an unreachable LLM raises.
    """
    import warnings

    from lmd.layouts import LayoutWarning
    from lmd.prompts import LLMUnavailableError, PlannerError

    seen: Counter[str] = Counter()
    for prompt in prompts:
        sample = seen[prompt.caption]
        seen[prompt.caption] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LayoutWarning)
            try:
                messages = planner.plan_messages(prompt.caption)
                yield planner.complete(messages, sample=sample).layout
            except LLMUnavailableError:
                raise
            except PlannerError:
                yield None

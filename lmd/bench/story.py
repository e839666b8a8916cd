"""`lmd bench story`: what a story of N pictures costs with shared attention, for several N.

The layouts are fixed (no LLM): the same cat in different scenes with a second object each.
Every N is drawn once to warm up, then timed with shared attention and without it (each
picture as the method draws it alone, in one batch), so the overhead and how it grows with N
show side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lmd.layouts import Box, Layout

SCENES = [
    ("A realistic photo of a sunny beach", "a red ball"),
    ("A realistic photo of a snowy forest", "a wooden sled"),
    ("A realistic photo of a cozy living room", "a green sofa"),
    ("A realistic photo of a city street at night", "a yellow taxi"),
    ("A realistic photo of a flower garden", "a watering can"),
    ("A realistic photo of a kitchen", "a blue bowl"),
    ("A realistic photo of a mountain lake", "a small boat"),
    ("A realistic photo of a library", "a stack of books"),
]
SUBJECT = "a grey cat"


def story_layouts(count: int) -> list[Layout]:
    """`count` layouts of the cat in a different scene each (positions vary)."""
    out = []
    for k in range(count):
        background, other = SCENES[k % len(SCENES)]
        x = 30 + (k * 97) % 220
        out.append(
            Layout(
                boxes=[
                    Box(name=SUBJECT, x=x, y=220, w=200, h=240),
                    Box(name=other, x=(x + 260) % 330, y=60, w=150, h=150),
                ],
                background=background,
                negative="",
            )  # fmt: skip
        )
    return out


@dataclass
class StoryTiming:
    pictures: int
    shared_seconds: float
    shared_forwards: int
    alone_seconds: float
    alone_forwards: int

    def line(self) -> str:
        per = self.shared_seconds / self.pictures
        ratio = self.shared_seconds / self.alone_seconds
        return (
            f"{self.pictures:>8} | {self.shared_seconds:>9.1f} | {per:>9.2f} | "
            f"{self.shared_forwards:>8} | {self.alone_seconds:>9.1f} | {ratio:>5.2f}"
        )


HEADER = (
    "pictures | shared, s | s/picture | forwards | alone, s | ratio\n"
    "-------- | --------- | --------- | -------- | -------- | -----"
)


def bench_story(renderer, counts: list[int], *, seed: int = 0, progress=None) -> list[StoryTiming]:
    """Time a story of each size in `counts`, with and without shared attention."""
    timings = []
    for count in counts:
        layouts = story_layouts(count)
        renderer.cache.clear()
        renderer.render_story(layouts, seed=seed, progress=progress)  # warm up
        measured = {}
        for shared in (True, False):
            renderer.cache.clear()
            start = time.perf_counter()
            story = renderer.render_story(layouts, seed=seed, progress=progress, consistency=shared)
            measured[shared] = (time.perf_counter() - start, story.counts.forwards)
        timings.append(StoryTiming(count, *measured[True], *measured[False]))
    return timings

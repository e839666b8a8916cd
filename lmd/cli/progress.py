"""What the CLI says while it works (on stderr): the library reports, the CLI shows.

On a terminal, progress is drawn as tqdm bars. Anywhere else (a pipe, a log file, CI) bars
would be silent or a smear of carriage returns, so each phase becomes one line when it ends,
with its time, plus a line every `EVERY` seconds while a long phase runs. Every LLM request
is announced before it is sent, and every model load before it starts.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

from lmd.layouts.words import counted

EVERY = 30.0
"""Seconds between the lines of a long phase when stderr is no terminal."""


def on_terminal(file: TextIO | None = None) -> bool:
    """Whether `file` (default stderr) is a terminal, where bars can redraw in place."""
    file = file or sys.stderr
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def say(text: str, file: TextIO | None = None) -> None:
    """One line on stderr, above any bar being drawn."""
    file = file or sys.stderr
    if on_terminal(file):
        tqdm.write(text, file=file)
    else:
        print(text, file=file, flush=True)


def seconds(s: float) -> str:
    """`s` for people: `4.2 s`, `3 min 05 s`, `1 h 02 min`."""
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


class Bars:
    """`progress(phase, step, total)`: a tqdm bar per phase on a terminal, else lines.

    `disable` True shows nothing; False draws bars even where stderr is no terminal; None
    (the default) chooses by the terminal. In lines, a phase's time runs from the end of the
    phase before it or from the last `begin()` (made when the bars are), whichever is later.
    """

    def __init__(self, file: TextIO | None = None, disable: bool | None = None):
        self.file = file or sys.stderr
        self.disable = disable
        self.lines = disable is None and not on_terminal(self.file)
        self._bars: dict[str, tqdm] = {}
        self._runs: dict[str, _Run] = {}
        self.begin()

    def begin(self) -> None:
        """Work starts now (a render after its models loaded, a job): the next phase's clock
        starts here."""
        self._since = time.monotonic()

    def __call__(self, phase: str, step: int, total: int) -> None:
        if self.disable:
            return
        if self.lines:
            self._line(phase, step, total)
        else:
            self._bar(phase, step, total)

    def _bar(self, phase: str, step: int, total: int) -> None:
        bar = self._bars.get(phase)
        if bar is None or step <= bar.n:
            if bar is not None:
                bar.close()
            bar = tqdm(
                total=total, desc=phase, unit="step", file=self.file, leave=False,
                disable=False, dynamic_ncols=True,
            )  # fmt: skip
            self._bars[phase] = bar
        bar.update(step - bar.n)
        if step >= total:
            bar.close()
            del self._bars[phase]

    def _line(self, phase: str, step: int, total: int) -> None:
        now = time.monotonic()
        run = self._runs.get(phase)
        if run is None or step <= run.step:
            run = self._runs[phase] = _Run(step=step, started=self._since, said=now)
        run.step = step
        if step >= total:
            del self._runs[phase]
            self._since = now
            steps = f"{total} step{'' if total == 1 else 's'}"
            self._say(f"{phase}: {steps} in {seconds(now - run.started)}")
        elif now - run.said >= EVERY:
            run.said = now
            self._say(f"{phase}: step {step}/{total}, {seconds(now - run.started)}")

    def _say(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        self._runs.clear()


@dataclass
class _Run:
    """One pass of a phase, as the lines mode times it."""

    step: int
    started: float
    said: float


class Count:
    """Finished items of a known total (prompts planned, jobs drawn): a tqdm bar on a
    terminal, else a line per item (`label` says what it was) with the time so far, at most
    one every `every` seconds (and always the last)."""

    def __init__(self, total: int, desc: str, unit: str, *, position: int = 0, every: float = 0.0):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.done = 0
        self.started = self.said = time.monotonic()
        self.bar = None
        if on_terminal():
            self.bar = tqdm(
                total=total, desc=desc, unit=unit, position=position, file=sys.stderr,
                dynamic_ncols=True, leave=True,
            )  # fmt: skip

    def update(self, done: int, label: str = "") -> None:
        """`done` items are finished now; `label` names the last one."""
        now = time.monotonic()
        if self.bar is not None:
            if label:
                self.bar.set_postfix_str(label, refresh=False)
            self.bar.update(done - self.bar.n)
        elif done > self.done and (done >= self.total or now - self.said >= self.every):
            self.said = now
            took = seconds(now - self.started)
            what = f" ({label})" if label else ""
            print(f"{self.desc}: {done}/{self.total} {self.unit}s{what}, {took}",
                  file=sys.stderr, flush=True)  # fmt: skip
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def say_loading(settings, file: TextIO | None = None) -> None:
    """One stderr line before the models load: which model, and whether it downloads first."""
    from lmd.models import is_cached

    model = settings.model_id
    first = "" if is_cached(model) else " (first use downloads it)"
    say(f"loading model {model}{first} ...", file)


def load_renderer(settings):
    """A `Renderer` for `settings`, saying so on stderr before and after the models load."""
    from lmd.api import Renderer

    say_loading(settings)
    start = time.monotonic()
    renderer = Renderer(settings)
    say(f"loaded in {seconds(time.monotonic() - start)}")
    return renderer


class LazyRenderer:
    """A `Renderer` that loads its models when first needed (saying so), so a bad request, a
    failed LLM call or `/help` costs no load."""

    def __init__(self, settings):
        self.settings = settings
        self._renderer = None

    def load(self):
        """The loaded `Renderer` (loaded now, once)."""
        if self._renderer is None:
            self._renderer = load_renderer(self.settings)
        return self._renderer

    def render(self, layout, **kwargs):
        renderer = self.load()
        _begin(kwargs.get("progress"))
        return renderer.render(layout, **kwargs)

    def __call__(self, request):
        renderer = self.load()
        _begin(request.progress)
        return renderer(request)


def _begin(progress) -> None:
    """Start the clock of `progress` (`Bars`) now that the models are loaded."""
    begin = getattr(progress, "begin", None)
    if begin is not None:
        begin()


def say_asking(notice) -> None:
    """One stderr line before each LLM request (a `lmd.prompts.AskNotice`), or for a reply
    replayed from the cache."""
    say(f"{notice} (--no-cache asks again)" if notice.cached else f"{notice} ...")


def render_summary(method: str, result) -> str:
    """The line `render` and `generate` print about a picture: time, objects, UNet work."""
    return (
        f"{method}: {result.seconds:.1f} s, {counted(result.generated, 'object')} drawn, "
        f"{result.counts.forwards} {result.counts.denoiser} forwards, "
        f"{result.counts.backwards} backwards"
    )

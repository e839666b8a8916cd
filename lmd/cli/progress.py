"""Progress bars for the CLI: the library reports steps, the CLI draws them (on stderr)."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Bars:
    """`progress(phase, step, total)` drawn as one tqdm bar per phase; a bar closes when full."""

    def __init__(self, file=None, disable: bool | None = None):
        self.file = file or sys.stderr
        self.disable = disable
        self._bars: dict[str, tqdm] = {}

    def __call__(self, phase: str, step: int, total: int) -> None:
        bar = self._bars.get(phase)
        if bar is None or step <= bar.n:
            if bar is not None:
                bar.close()
            bar = tqdm(
                total=total, desc=phase, unit="step", file=self.file, leave=False,
                disable=self.disable, dynamic_ncols=True,
            )  # fmt: skip
            self._bars[phase] = bar
        bar.update(step - bar.n)
        if step >= total:
            bar.close()
            del self._bars[phase]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def say_loading(settings, file=None) -> None:
    """One stderr line before the models load: which model, and whether it downloads first."""
    from lmd.models import is_cached

    model = settings.model_id
    first = "" if is_cached(model) else " (first use downloads it)"
    print(f"loading model {model}{first} ...", file=file or sys.stderr, flush=True)


def load_renderer(settings):
    """A `Renderer` for `settings`, saying so on stderr while the models load."""
    from lmd.api import Renderer

    say_loading(settings)
    return Renderer(settings)

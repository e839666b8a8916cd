"""The parity runs: each recorded scenario drawn once per session under `LMDConfig.paper()`."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.parity_fixture import Comparison, Scenario, scenario


@dataclass
class ParityRun:
    scenario: Scenario
    comparison: Comparison
    cache: object  # the BoxCache the run filled: later renders reuse its objects
    result: object


def render(s: Scenario, config, comparison: Comparison, cache=None, **seeds):
    """Draw `s` with lmd's real `Controller` on the recording's model and segmenter."""
    from lmd.controller import Controller
    from tests.parity_fixture import pipeline

    segmenter = s.segmenter()
    comparison.then = _both(comparison.then, segmenter if callable(segmenter) else None)
    controller = Controller(pipeline(s.method), config, segmenter=segmenter, model_id=s.name)
    kwargs = {**s.seeds, **seeds}
    return controller.render(s.layout, method=s.method, cache=cache, trace=comparison, **kwargs)


def _both(a, b):
    if a is None or b is None:
        return a or b
    return lambda *args: (a(*args), b(*args))


@pytest.fixture(scope="session")
def parity():
    """`parity(name)` -> the `ParityRun` of that scenario (drawn on first use, then kept)."""
    from lmd.controller import BoxCache

    runs: dict[str, ParityRun] = {}

    def get(name: str) -> ParityRun:
        if name not in runs:
            s = scenario(name)
            comparison, cache = Comparison(s.expected()), BoxCache()
            result = render(s, s.config(), comparison, cache)
            runs[name] = ParityRun(s, comparison.finish(), cache, result)
        return runs[name]

    return get

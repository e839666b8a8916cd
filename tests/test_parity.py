"""Parity: lmd under `LMDConfig.paper()` computes what the paper's own code computed.

Each recorded run of the paper's stage-2 code (`tests/data/parity`, see its README) is drawn
by lmd's real `Controller` on the same tiny model, layout, seeds and settings, with SAM
replaced as the recording replaced it, and every stage is compared as lmd reports it through
its trace: starting noise, each object's latents after every step, the guidance energies,
masks, centring offsets, composed frames, the overall latents per step, the final latents and
the picture. Latents, energies and offsets agree to 1e-4 relative, masks exactly, the picture
within 1/255. A failure names the first tensor that differs and by how much.

The default run draws `lmd` (every LMD stage, three boxes, a repeated name) and `lmdplus`
(GLIGEN) to the end, and the other two recordings as far as what they pin down: the phrase
tokens' energies (`lmd_article`) and the stop rule's per-box guidance (`lmd_threshold_8.44`).
`pytest -m slow` draws those two to the end as well; `-m "not parity and not slow"` skips
all of it.
"""

from __future__ import annotations

import pytest

from tests.fixtures_parity import render
from tests.parity_fixture import KINDS, Comparison, StopRender, kind_of, scenario

pytestmark = pytest.mark.parity
FULL = [
    "lmd", "lmdplus",
    pytest.param("lmd_article", marks=pytest.mark.slow),
    pytest.param("lmd_threshold_8.44", marks=pytest.mark.slow),
]  # fmt: skip
# Recording -> the last value its prefix run compares, and what must have been compared.
PREFIX = {
    # Step 0 of both objects: the energies over every token of "a cat" / "a dog", the update.
    "lmd_article": (("box1.latents", 0), {"box0.energy": 4, "box1.energy": 4}),
    # The stop rule: 1, 2 and 3 evaluations at step 0, each box's last one at or below the
    # threshold yet followed by an update, and none at step 1.
    "lmd_threshold_8.44": (
        ("box2.latents", 1), {"box0.energy": 1, "box1.energy": 2, "box2.energy": 3},
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", FULL)
def test_stage_matches_the_papers_code(parity, name, kind):
    run = parity(name)
    differences = [d for d in run.comparison.differences if kind_of(d.name) == kind]
    assert not differences, f"{kind}: {differences[0]}; {run.comparison.report()}"
    expected = [n for n in run.scenario.expected() if kind_of(n) == kind]
    if kind == "energies" and run.scenario.method == "lmd+":
        assert expected == ["overall.energy"]  # LMD+ does not guide its per-box generation
    assert expected and all(run.comparison.seen[n] for n in expected)


@pytest.mark.parametrize("name", sorted(PREFIX))
def test_the_start_of_the_other_recordings_matches(name):
    s = scenario(name)
    stop, counts = PREFIX[name]
    comparison = Comparison(s.expected(), stop_after=stop)
    with pytest.raises(StopRender):
        render(s, s.config(), comparison)
    assert not comparison.differences, comparison.report()
    assert {n: comparison.seen[n] for n in counts} == counts
    steps = stop[1] + 1
    assert all(comparison.seen[f"box{i}.latents"] == steps for i in range(len(s.layout.boxes)))


def test_a_mismatch_names_the_first_tensor_that_differs():
    s = scenario("lmd_article")
    expected = s.expected()
    _, energy = expected["box1.energy"][2]
    expected["box1.energy"][2] = (0, energy * 1.01)  # as if lmd had computed 1% more
    comparison = Comparison(expected, stop_on_difference=True)
    with pytest.raises(StopRender):
        render(s, s.config(), comparison)
    assert str(comparison.first).startswith("box1.energy[2] at step 0: ")
    assert "(9.90e-03)" in str(comparison.first)

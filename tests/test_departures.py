"""Every departure from the paper's code, named: where the defaults move from `paper()`.

`LMDConfig.departures()` and each method's `departures()` list each field with the paper's value
and lmd's default (`DEPARTURES`: all of them). Here:
1. for each field, the recorded scenario that shows it and the first tensor that differs
   when only that field is switched from `paper()` to the other choice (or why no recorded
   scenario can show it, and which test pins it instead);
2. for each default that is not the paper's, the flaw of the paper's behaviour it fixes.
Renders stop at the first difference, and reuse the parity runs' per-box results where
the field is one the per-box generation never reads.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from lmd.controller import LMDConfig
from lmd.controller.captions import TokenRule, Tokens, box_tokens, overall_phrases, overall_tokens
from lmd.controller.compose import compose
from lmd.controller.masks import centring_offset, point_prompt, resize_masks, shift_unit
from lmd.controller.methods import get_method
from lmd.controller.methods.lmd_plus import PlusSettings, grounding
from lmd.controller.noise import Cells, object_seeds
from lmd.controller.per_box import BoxPhase
from lmd.controller.phase import PhaseObject
from lmd.controller.trace import TraceRecorder
from tests.fixtures_parity import render
from tests.parity_fixture import SCENARIOS, Comparison, StopRender, error, pipeline, scenario

# Every departure: the shared config's and the methods' own (LMD+'s include LMD's).
DEPARTURES = {**LMDConfig.departures(), **get_method("lmd+").departures()}


def other(field: str):
    """The choice of `field` that is not the paper's."""
    paper, default = DEPARTURES[field]
    if paper != default:
        return default
    choices = {"energy_tokens": "head", "prompt_order": "layout"}
    choices |= {"plus_guidance_grounding": "conditional", "plus_overall_phrase": "name"}
    return choices[field]


def first_difference(parity, name: str, field: str, stop_after=None):
    """Render scenario `name` with only `field` switched; -> (the Comparison, a recorder).

    A field the per-box generation does not read reuses the parity run's objects.
    """
    s = scenario(name)
    config, method = s.config(), get_method(s.method).paper()
    if field in LMDConfig.departures():
        config = s.config(**{field: other(field)})
    else:
        method = method.with_settings(**{field: other(field)})
    cache = None
    same = BoxPhase.of(config, method, s.layout.negative)
    if same == BoxPhase.of(s.config(), get_method(s.method).paper(), s.layout.negative):
        cache = parity(name).cache
    recorder = TraceRecorder()
    comparison = Comparison(
        s.expected(), stop_on_difference=stop_after is None, stop_after=stop_after,
        then=recorder,
    )  # fmt: skip
    with contextlib.suppress(StopRender):
        render_with(s, config, method, comparison, cache)
    return comparison, recorder


def render_with(s, config, method, comparison, cache=None):
    """`tests.fixtures_parity.render` with a `Method` object instead of the scenario's name."""
    from lmd.controller import Controller

    segmenter = s.segmenter()
    if callable(segmenter):
        then = comparison.then
        comparison.then = (lambda *a: (then(*a), segmenter(*a))) if then else segmenter
    controller = Controller(pipeline(s.method), config, segmenter=segmenter, model_id=s.name)
    return controller.render(s.layout, method=method, cache=cache, trace=comparison, **s.seeds)


# 1. On the recorded scenarios.
# field -> (scenario, the first differing value as "name[index] at step s")
SHOWN = {
    # "a cat" without "a": its energy moves by ~8e-5 relative on random weights (within the
    # tolerance), so the first step's latents are where it shows.
    "energy_tokens": ("lmd_article", "box0.latents[0] at step 0"),
    "scale_step_settings": ("lmd", "box0.latents[1] at step 1"),  # guided only at step 0
    "stop_rule": ("lmd_threshold_8.44", "box0.latents[0] at step 0"),  # no update below
    "centre_half_cell": ("lmd", "box0.offset[0]"),  # half a cell further up and left
    "frame0_paste": ("lmd", "composed[0]"),  # no zeros pasted into frame 0
    # LMD+. Grounding the guidance forward moves its energies a little (on random weights,
    # within the tolerance); the phrase does not move them at all: the paper's null grounding
    # masks the phrases out of the guidance forward.
    "plus_guidance_grounding": ("lmdplus", "overall.latents[0] at step 0", (1e-6, 1e-4)),
    "plus_overall_phrase": ("lmdplus", "overall.latents[0] at step 0", (0.0, 1e-6)),  # "cat"
}
# field -> why no recorded scenario shows it, and the test that pins it
NOT_SHOWN = {
    "word_token": "every recorded name ends in its head noun",
    "token_search": "no recorded name appears earlier in its prompt",
    "prompt_order": "every recorded layout lists its boxes in name order",
    "object_seed_rule": "the recordings pass each object's seed",
    "mask_resize": "the recorded masks are whole cells of the 8x8 attention",
    "sam_point": "SAM is replaced; the replacement reads no point",
    "gligen_keep": "the recordings have 3 boxes, under GLIGEN's 30",
    "guidance_step_rule": "the recordings use DDIM, which has no sigmas",
}


def test_every_departure_is_named_here():
    assert set(SHOWN) | set(NOT_SHOWN) == set(DEPARTURES)
    assert not set(SHOWN) & set(NOT_SHOWN)


@pytest.mark.parity
@pytest.mark.parametrize("field", sorted(SHOWN))
def test_switching_one_departure_changes_the_expected_stage_first(parity, field):
    name, expected, *energies = SHOWN[field]
    comparison, _ = first_difference(parity, name, field)
    assert str(comparison.first).startswith(expected), comparison.report()
    if energies:  # how far the energies before that moved
        (low, high), moved = energies[0], comparison.worst["energies"]
        assert low <= moved < high, moved


@pytest.mark.parity
def test_the_recordings_cannot_show_the_other_departures():
    tok = pipeline("lmd").tokenizer
    for name in SCENARIOS:
        s = scenario(name)
        names, background = s.layout.names, s.layout.background
        assert names == sorted(names)  # prompt_order
        phrases, _ = overall_phrases(names)
        for rule in (TokenRule(word="last"), TokenRule(search="first")):  # word_token, search
            assert [box_tokens(tok, background, n, rule) for n in names] == [
                box_tokens(tok, background, n) for n in names
            ]
            assert overall_tokens(tok, background, phrases, rule) == overall_tokens(
                tok, background, phrases
            )
        for i in range(len(names)):  # mask_resize: whole attention cells resize exactly
            mask = s.tensors[f"box{i}.mask"].bool()
            up = torch.nn.functional.interpolate(mask[None, None].float(), size=(256, 256))[0, 0]
            assert torch.equal(resize_masks(up.bool(), (32, 32), "bilinear"), mask)
            assert torch.equal(resize_masks(up.bool(), (32, 32), "area"), mask)
        assert len(names) < PlusSettings().max_objects  # gligen_keep


@pytest.mark.parity
def test_the_papers_seed_rule_gives_the_recorded_seeds(parity):
    """`object_seed_rule` "index": background seed 1, objects 20, 21, 22 in name order."""
    run = parity("lmd")
    for rule, differs in (("index", False), ("identity", True)):
        comparison = Comparison(run.scenario.expected(), stop_after="box2.initial_latents")
        config = run.scenario.config(object_seed_rule=rule)
        with pytest.raises(StopRender):
            render(run.scenario, config, comparison, object_seeds=None)
        assert bool(comparison.differences) == differs, comparison.report()
        assert comparison.seen["box2.initial_latents"] == 1


@pytest.mark.parity
def test_the_half_cell_moves_one_recorded_object_a_grid_step(parity):
    _, recorder = first_difference(parity, "lmd", "centre_half_cell", "composed")
    expected = scenario("lmd").expected()
    for i in range(3):
        recorded = expected[f"box{i}.offset"][0][1]
        assert torch.allclose(recorder.last(f"box{i}.offset"), recorded - 0.5, atol=1e-5)
    # Rounded to the 8-cell grid, only the dog's vertical shift changes (4.5 -> 4.0 cells;
    # 4.0 is half a step, which rounds to even: no shift).
    assert [recorder.last(f"box{i}.shift").tolist() for i in range(3)] == [
        [-8, 0], [16, -8], [8, 0],
    ]  # fmt: skip
    assert float(expected["box2.offset"][0][1][1]) == pytest.approx(4.5)


@pytest.mark.parity
def test_the_papers_frame_zero_has_zeros_where_a_shift_left_nothing(parity):
    """`frame0_paste` "box" (the paper's): recorded frame 0 holds exact zeros; lmd's none."""
    recorded = scenario("lmd").tensors["composed"][0]
    holes = (recorded == 0).all(0)
    assert int(holes.sum()) == 8  # 8 latent cells of pure zero where noise should be
    comparison, recorder = first_difference(parity, "lmd", "frame0_paste", "composed")
    ours = recorder.last("composed")
    assert not (ours[0] == 0).all(0).any()
    assert torch.equal(ours[0][:, ~holes], recorded[:, ~holes])  # only those cells change
    assert error("composed", ours[1:], scenario("lmd").tensors["composed"][1:]) < 1e-5


# The shipped defaults (at the recordings' 10 steps, step settings scaled from 50), as a
# whole: where each recording first parts from them.
DEFAULTS_FIRST = {
    "lmd": "box0.latents[1] at step 1",  # 3 iterations at step 1 (the schedule scaled), not 4
    "lmd_article": "box0.latents[1] at step 1",
    "lmdplus": "overall.latents[1] at step 1",  # LMD+ guides the overall generation only
    "lmd_threshold_8.44": "box0.latents[0] at step 0",  # no update below the threshold
}


@pytest.mark.slow
@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(DEFAULTS_FIRST))
def test_where_the_shipped_defaults_part_from_each_recording(name):
    s = scenario(name)
    comparison = Comparison(s.expected(), stop_on_difference=True)
    config = LMDConfig(steps=s.spec["steps"], loss_threshold=s.spec["loss_threshold"])
    with pytest.raises(StopRender):
        render(s, config, comparison)
    assert str(comparison.first).startswith(DEFAULTS_FIRST[name]), comparison.report()


# 2. The flaws of the paper's behaviour that lmd's defaults fix (field -> the test).
FLAWS = {
    "word_token": (
        "test_controller_prompts",
        "test_the_papers_word_token_is_the_last_word_not_the_head_noun",
    ),
    "token_search": (
        "test_controller_prompts",
        "test_the_papers_token_search_can_land_in_the_background",
    ),
    "object_seed_rule": (
        "test_departures",
        "test_the_papers_object_seeds_change_when_another_object_is_added",
    ),
    "scale_step_settings": (
        "test_departures",
        "test_the_papers_absolute_step_indices_guide_a_short_render_to_the_end",
    ),
    "stop_rule": (
        "test_guidance",
        "test_the_papers_carried_stop_rule_updates_below_the_threshold_then_never_again",
    ),
    "centre_half_cell": ("test_departures", "test_the_papers_centre_misses_the_nearest_grid_step"),
    "frame0_paste": ("test_departures", "test_the_papers_frame_zero_pastes_zeros"),
    "mask_resize": (
        "test_departures",
        "test_the_papers_mask_resize_keeps_a_sliver_and_drops_a_nearly_full_cell",
    ),
    "sam_point": ("test_departures", "test_the_papers_sam_point_is_the_corner_of_the_peak_cell"),
    "gligen_keep": ("test_departures", "test_the_papers_gligen_slots_can_drop_the_largest_box"),
    "guidance_step_rule": (
        "test_departures",
        "test_the_papers_guidance_step_takes_dpm_solvers_sigmas_on_unit_scale_latents",
    ),
}


def test_every_default_that_is_not_the_papers_has_a_test_showing_the_flaw():
    import importlib

    departing = {f for f, (paper, ours) in DEPARTURES.items() if paper != ours}
    assert set(FLAWS) == departing
    for module, function in FLAWS.values():
        assert callable(getattr(importlib.import_module(f"tests.{module}"), function))


def test_the_papers_object_seeds_change_when_another_object_is_added():
    """`object_seed_rule` "index": adding "a bear" reseeds the cat and the dog."""
    before = object_seeds(1, ["a cat", "a dog"], None, by_index=True)
    after = object_seeds(1, ["a cat", "a dog", "a bear"], None, by_index=True)
    assert before == [20, 21] and after[:2] == [21, 22]
    ours = object_seeds(1, ["a cat", "a dog", "a bear"], None)
    assert ours[:2] == object_seeds(1, ["a cat", "a dog"], None)


def test_the_papers_absolute_step_indices_guide_a_short_render_to_the_end():
    """`scale_step_settings` False: at 25 steps every step is guided (60% of them at 50)."""
    paper, ours = LMDConfig.paper(steps=25), LMDConfig(steps=25)
    assert (paper.guidance_until, ours.guidance_until) == (25, 15)
    assert (paper.mask_attn_from, ours.mask_attn_from) == (10, 5)
    assert [paper.iterations(i) for i in range(25)][-5:] == [1] * 5  # still guiding at t ~ 0
    at_50 = (LMDConfig.paper().guidance_until, LMDConfig().guidance_until)
    assert at_50 == (30, 30)  # the two agree at the published 50 steps


def test_the_papers_centre_misses_the_nearest_grid_step():
    """`centre_half_cell` False: a 4-cell mask whose box is 3.8 cells right of it is moved
    a whole 8-cell step (4.2 cells off) instead of staying (3.8 off)."""
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[0:4, 0:4] = True  # covers [0, 4): centre 2.0
    target = (5.8, 2.0)
    unit = shift_unit(32, 4, 8)
    for half, moved in ((True, 0), (False, 8)):
        dx, _ = centring_offset(mask, target, half)
        assert round(dx / unit) * unit == moved
    assert abs(2.0 + 0 - 5.8) < abs(2.0 + 8 - 5.8)  # staying is nearer


def test_the_papers_frame_zero_pastes_zeros():
    background = torch.full((1, 8, 8), 3.0)
    frames = [torch.zeros(2, 1, 8, 8)]  # shifted: only column 0 holds real latents
    frames[0][:, :, :, 0] = 1.0
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:4, 0] = True
    valid = torch.zeros(8, 8, dtype=torch.bool)
    valid[:, 0] = True
    paper = compose(background, frames, [mask], None).frames[0, 0]
    ours = compose(background, frames, [mask], [valid]).frames[0, 0]
    assert (paper[1:5, 1] == 0).all()  # the grown box pasted the shift's zeros
    assert (ours[1:5, 1] == 3.0).all()  # lmd keeps the background noise there


def test_the_papers_mask_resize_keeps_a_sliver_and_drops_a_nearly_full_cell():
    """`mask_resize` "bilinear": a cell covered only at its centre survives, one covered but
    for its centre vanishes."""
    sliver = torch.zeros(16, 16, dtype=torch.bool)
    sliver[3:5, 3:5] = True  # 4 of 64 pixels, at the centre of cell (0, 0)
    nearly = torch.ones(16, 16, dtype=torch.bool)
    nearly[3:5, 3:5] = False  # 60 of 64 pixels: all but the centre
    for mask, paper, ours in ((sliver, True, False), (nearly, False, True)):
        assert bool(resize_masks(mask, (2, 2), "bilinear")[0, 0]) == paper
        assert bool(resize_masks(mask, (2, 2), "area")[0, 0]) == ours


def test_the_papers_sam_point_is_the_corner_of_the_peak_cell():
    """`sam_point` "corner": the point sits on the peak cell's corner, shared with 3 others."""
    assert point_prompt((2, 5), (8, 8), (512, 512)) == (352.0, 160.0)  # the cell's centre
    assert point_prompt((2, 5), (8, 8), (512, 512), corner=True) == (320.0, 128.0)


def test_the_papers_gligen_slots_can_drop_the_largest_box():
    """`gligen_keep` "first": past 30 boxes the paper keeps the first 30 in prompt order."""
    settings = get_method("lmd+").paper().settings
    objects = [
        PhaseObject(f"a cup {i:02d}", f"a cup {i:02d}", Cells(i, 0, 1, 1), (0, 0, 0.01, 0.01),
                    Tokens((1,), 1), i)
        for i in range(30)
    ]  # fmt: skip
    objects.append(
        PhaseObject("a zebra", "a zebra", Cells(0, 2, 20, 20), (0, 0.1, 0.6, 0.7), None, 30)
    )
    paper = [p for _, p in grounding(settings, tuple(objects))]
    ours = [p for _, p in grounding(PlusSettings(gligen_keep="largest"), tuple(objects))]
    assert "a zebra" not in paper and len(paper) == 30
    assert ours[0] == "a zebra" and len(ours) == 30


def test_the_papers_guidance_step_takes_dpm_solvers_sigmas_on_unit_scale_latents():
    """`guidance_step_rule` "sigmas": DPM-Solver++ keeps `sigmas` but its latents have unit
    scale (`init_noise_sigma` 1); at the first of 50 steps the paper's sigma^2 is ~200 times
    the sqrt(1 - alpha_bar) a unit-scale latent takes, so one update swamps the latents."""
    from diffusers import DPMSolverMultistepScheduler

    from lmd.controller.energy import noise_level

    scheduler = DPMSolverMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    )
    scheduler.set_timesteps(50)
    t = scheduler.timesteps[0]
    paper = noise_level(scheduler, 0, t, "sigmas")
    ours = noise_level(scheduler, 0, t, "scaling")
    assert float(scheduler.init_noise_sigma) == 1.0
    assert ours == pytest.approx(float(1 - scheduler.alphas_cumprod[int(t)]) ** 0.5)
    assert ours < 1.0 and paper > 200 * ours

"""What the parity suite cannot see: the recordings share one scheduler (DDIM), one image size,
one step count and inputs away from every boundary. These tests pin the rest directly: every
input of a per-box result is in its cache key, the prompts are the paper's word for word, the
guidance step under each scheduler, the rounding and comparisons at boundaries, and the
precision of the SDXL decode."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from lmd.layouts.model import Box, Layout

from lmd.controller import BoxCache, Controller, LMDConfig
from lmd.controller.attention import AttentionStore, installed
from lmd.controller.backbones import family_of
from lmd.controller.captions import box_prompt, overall_phrases, overall_prompt
from lmd.controller.engine import Run
from lmd.controller.flows import Drawing
from lmd.controller.flows.boxes import boxes
from lmd.controller.masks import coarse_masks, select_mask
from lmd.controller.methods import get_method
from lmd.controller.noise import gaussian, object_seeds

PARITY = Path(__file__).parent / "data" / "parity"
# The paper's negative prompts, as its code (prompt.py, commit cef2a902) spells them.
PAPER_OVERALL_NEGATIVE = (
    "artifacts, blurry, smooth texture, bad quality, distortions, unrealistic, distorted image, "
    "bad proportions, duplicate"
)
PAPER_PER_BOX_NEGATIVE = (
    PAPER_OVERALL_NEGATIVE + ", two, many, group, occlusion, occluded, side, border, collate"
)
CAT_DOG = Layout(
    boxes=[Box(name="a gray cat", x=40, y=220, w=160, h=200),
           Box(name="a dog", x=300, y=150, w=180, h=260)],
    background="a grassy park", negative="dark",
)  # fmt: skip


def draw_boxes(pipe, layout=CAT_DOG, *, seed=5, seeds=None, cache=None, model="tiny",
               config=None, method="lmd", size=None):  # fmt: skip
    """LMD's per-box phase alone: (results, drawn, reused)."""
    config = config or LMDConfig(steps=2, loss_threshold=0.0)
    c = Controller(pipe, config, model_id=model)
    h, w = size or c.native_size
    scaled = layout.scaled(w, h)
    latent_hw = (h // 8, w // 8)
    run = Run(pipe, config, method, AttentionStore(c.layers), (h, w), latent_hw)
    noise = gaussian(seed, (4, *latent_hw))
    seeds = seeds or object_seeds(seed, scaled.names, None)
    drawing = Drawing(run, scaled, seed, seeds, noise, model, cache)
    with torch.no_grad(), installed(pipe.unet, run.store):
        return boxes(drawing)


# 1. Every input of a per-box result is in its cache key.
def test_each_input_of_a_per_box_result_changed_alone_draws_it_afresh(tiny_pipe):
    cache = BoxCache()
    assert draw_boxes(tiny_pipe, cache=cache)[1:] == (2, 0)
    assert draw_boxes(tiny_pipe, cache=cache)[1:] == (0, 2)  # nothing changed: both reused
    renamed = CAT_DOG.model_copy(
        update={
            "boxes": [CAT_DOG.boxes[0].model_copy(update={"name": "a black cat"}), CAT_DOG.boxes[1]]
        }
    )
    bigger = CAT_DOG.model_copy(
        update={"boxes": [CAT_DOG.boxes[0].model_copy(update={"w": 260}), CAT_DOG.boxes[1]]}
    )
    moved = CAT_DOG.model_copy(update={"boxes": [
        CAT_DOG.boxes[0].model_copy(update={"x": 100}), CAT_DOG.boxes[1]]})  # fmt: skip
    changes = {
        "object's text": dict(layout=renamed),
        "object's seed": dict(seeds=[1, object_seeds(5, CAT_DOG.names, None)[1]]),
        "box size": dict(layout=bigger),
        "background seed": dict(seed=6, seeds=object_seeds(5, CAT_DOG.names, None)),
        "background prompt": dict(layout=CAT_DOG.model_copy(update={"background": "a beach"})),
        "negative prompt": dict(layout=CAT_DOG.model_copy(update={"negative": "bright"})),
        "image height and width": dict(size=(128, 192)),
        "model": dict(model="another"),
        "method's settings": dict(method=get_method("lmd").with_settings(blend_ratio=0.2)),
        "steps": dict(config=LMDConfig(steps=3, loss_threshold=0.0)),
    }
    for what, change in changes.items():
        _, drawn, reused = draw_boxes(tiny_pipe, cache=cache, **change)
        first_changed = what in ("object's text", "object's seed", "box size")
        assert (drawn, reused) == ((1, 1) if first_changed else (2, 0)), what
    # Where a box is does not key LMD's result: it is drawn centred and shifted afterwards.
    assert draw_boxes(tiny_pipe, layout=moved, cache=cache)[1:] == (0, 2)


def test_another_scheduler_draws_the_objects_afresh(tiny_pipe):
    from diffusers import EulerDiscreteScheduler

    pipe = copy.copy(tiny_pipe)  # the same modules, its own scheduler
    cache = BoxCache()
    draw_boxes(pipe, cache=cache)
    pipe.scheduler = EulerDiscreteScheduler.from_config(tiny_pipe.scheduler.config)
    assert draw_boxes(pipe, cache=cache)[1:] == (2, 0)
    pipe.scheduler = copy.deepcopy(tiny_pipe.scheduler)
    assert draw_boxes(pipe, cache=cache)[1:] == (0, 2)  # an equal scheduler: reused


# 2. The prompts the paper's code builds, word for word.
def encoded_texts(monkeypatch, pipe, method, layout=CAT_DOG):
    """Every text a render encodes, in order (the real encoder runs)."""
    backbone = type(family_of(pipe))
    seen: list[str] = []
    real = backbone.encode

    def spy(self, texts, image_hw):
        seen.extend(texts)
        return real(self, texts, image_hw)

    monkeypatch.setattr(backbone, "encode", spy)
    Controller(pipe, LMDConfig(steps=2)).render(layout, method=method)
    return seen


@pytest.mark.parametrize("method", ["lmd", "lmd+"])
def test_the_prompts_and_negative_prompts_are_the_papers(
    method, monkeypatch, tiny_pipe, tiny_gligen_pipe
):
    pipe = tiny_gligen_pipe if method == "lmd+" else tiny_pipe
    texts = encoded_texts(monkeypatch, pipe, method)
    # Per box: "{background} with {name}", told to avoid the layout's negative, then the
    # paper's per-box list; the overall image: the counted phrases, the overall list.
    assert texts[:2] == ["a grassy park with a gray cat", "a grassy park with a dog"]
    assert texts[2] == "dark, " + PAPER_PER_BOX_NEGATIVE
    assert texts[-2:] == ["dark, " + PAPER_OVERALL_NEGATIVE, "a grassy park with a dog, a gray cat"]
    # Without a negative prompt in the layout, the paper's lists alone (no leading comma).
    plain = encoded_texts(monkeypatch, pipe, method, CAT_DOG.model_copy(update={"negative": ""}))
    assert plain[2] == PAPER_PER_BOX_NEGATIVE and plain[-2] == PAPER_OVERALL_NEGATIVE


@pytest.mark.parametrize("scenario", ["lmd", "lmdplus", "lmd_article", "lmd_threshold_8.44"])
def test_the_recorded_prompts_are_built_word_for_word(scenario):
    spec = json.loads((PARITY / f"{scenario}.json").read_text())
    names = sorted(b["name"] for b in spec["boxes"])  # the recordings list boxes in name order
    *per_box, overall = [p["prompt"] for p in spec["prompts_and_token_indices"]]
    assert per_box == [box_prompt(spec["background"], n) for n in names]
    phrases, _ = overall_phrases(names, sort=True)
    assert overall == overall_prompt(spec["background"], phrases)


# 3. The guidance step size under every scheduler lmd runs.
SIGMA_SCALED = ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
                "LMSDiscreteScheduler"]  # fmt: skip
UNIT_SCALE = ["DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler",
              "DPMSolverSinglestepScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler",
              "LCMScheduler"]  # fmt: skip


@pytest.mark.parametrize("name", SIGMA_SCALED + UNIT_SCALE)
def test_the_guidance_step_follows_the_docstring_formula(name, tiny_pipe):
    """`noise_level`: sigma_i^2 on sigma-scaled latents, sqrt(1 - alpha_bar_t) on unit-scale
    ones, at the first, a middle and the last step."""
    import diffusers

    pipe = copy.copy(tiny_pipe)
    pipe.scheduler = getattr(diffusers, name).from_config(tiny_pipe.scheduler.config)
    backbone = family_of(pipe)
    backbone.check_scheduler(10)  # lmd runs it: one call a step
    scheduler = backbone.scheduler(10)
    for i in (0, 4, 9):
        t = scheduler.timesteps[i]
        if name in SIGMA_SCALED:
            expected = float(scheduler.sigmas[i]) ** 2
            assert float(scheduler.init_noise_sigma) > 1
        else:
            expected = math.sqrt(1 - float(scheduler.alphas_cumprod[int(t)]))
        assert backbone.noise_level(scheduler, i, t) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["HeunDiscreteScheduler", "KDPM2DiscreteScheduler",
                                  "PNDMScheduler"])  # fmt: skip
def test_a_scheduler_with_more_calls_than_steps_is_refused_in_one_line(name, tiny_pipe):
    import diffusers

    pipe = copy.copy(tiny_pipe)
    pipe.scheduler = getattr(diffusers, name).from_config(tiny_pipe.scheduler.config)
    with pytest.raises(ValueError, match=f"{name} takes \\d+ denoiser calls for 10 steps"):
        Controller(pipe, LMDConfig(steps=10)).render(CAT_DOG)
    with pytest.raises(ValueError, match=f"{name} (cannot take 2 steps|takes \\d+ denoiser)"):
        Controller(pipe, LMDConfig(steps=2)).render(CAT_DOG)


def test_lmd_renders_under_a_sigma_scaled_scheduler(tiny_pipe):
    from diffusers import EulerDiscreteScheduler

    pipe = copy.copy(tiny_pipe)
    pipe.scheduler = EulerDiscreteScheduler.from_config(tiny_pipe.scheduler.config)
    c = Controller(pipe, LMDConfig(steps=3, loss_threshold=0.0))
    first, again = c.render(CAT_DOG, seed=2), c.render(CAT_DOG, seed=2)
    assert first.image.tobytes() == again.image.tobytes()
    assert first.counts.backwards > 0


# 4. Boundaries: step fractions on an integer or a half, values on their thresholds.
def test_step_fractions_round_to_the_nearest_step_halves_up():
    c = LMDConfig(steps=5, guidance_steps=25, mask_attn_start=25)  # 25 of 50 at 5: 2.5
    assert (c.guidance_until, c.mask_attn_from) == (3, 3)
    c = LMDConfig(steps=7, guidance_steps=25, mask_attn_start=25)  # 3.5: 4 (not 3.5 -> 4 by luck)
    assert (c.guidance_until, c.mask_attn_from) == (4, 4)
    exact = LMDConfig(steps=25)  # 30 of 50 -> 15.0, 10 of 50 -> 5.0: exact, no rounding
    assert (exact.guidance_until, exact.mask_attn_from) == (15, 5)
    # The iteration schedule is read at floor(index * 50 / steps): index 2 of 25 is 4 (4
    # updates), index 3 is 6 (3 updates), exactly on the schedule's steps.
    assert [exact.iterations(i) for i in (2, 3, 4, 5)] == [4, 3, 3, 2]
    # The paper's absolute indices: guidance for index < 30 whatever the step count.
    assert LMDConfig.paper(steps=40).guidance_until == 30


def test_frozen_steps_floor_the_fraction_as_the_papers_int():
    assert LMDConfig(steps=5, frozen_ratio=0.5).frozen_steps == 2  # 2.5 -> 2
    assert LMDConfig(steps=4, frozen_ratio=0.5).frozen_steps == 2  # exact


def test_the_composed_latents_are_kept_exactly_for_the_frozen_steps(tiny_pipe):
    """Frozen: step index < int(steps * frozen_ratio) (5 steps: indices 0 and 1)."""
    from lmd.controller.trace import TraceRecorder

    after: dict[int, torch.Tensor] = {}

    def watch(phase, step, t, latents):
        if phase == "overall":
            after[step] = latents[0].clone()

    trace = TraceRecorder()
    c = Controller(tiny_pipe, LMDConfig(steps=5, overall_guidance=False))
    result = c.render(CAT_DOG, trace=trace, callback_on_step_end=watch)
    composed, inside = trace.last("composed"), torch.stack(result.masks).any(0)
    for step in (0, 1):
        assert torch.equal(after[step][:, inside], composed[step + 1][:, inside])
    assert not torch.equal(after[2][:, inside], composed[3][:, inside])


def test_a_mask_value_on_the_threshold_is_left_out():
    """The coarse mask keeps normalised attention strictly above the threshold (as the
    paper's `> mask_th`)."""
    attn = torch.tensor([[[0.0, 0.25, 0.2500001, 1.0]]])
    mask, _ = coarse_masks(attn, sigma=0.0, threshold=0.25)
    assert mask.tolist() == [[[False, False, True, True]]]


def test_sam_scores_on_the_thresholds_are_not_discouraged():
    """A mask at exactly the confidence or IoU floor counts as good (the paper's `<`)."""
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :1], masks[1, :2], masks[2, :3] = True, True, True  # sizes 4, 8, 12
    ious = torch.tensor([1.0, 1.0, 0.25])
    assert select_mask(masks, torch.tensor([1.0, 1.0, 0.85]), ious, 0.85, 0.25) == 2
    below = torch.tensor([1.0, 1.0, 0.8499])
    assert select_mask(masks, below, ious, 0.85, 0.25) == 1


def test_an_energy_on_the_threshold_gets_no_update(tiny_pipe):
    """Recompute rule: a row iterates only while its energy is strictly above the threshold."""
    cfg = LMDConfig(steps=5, loss_threshold=0.5)
    c = Controller(tiny_pipe, cfg)
    run = Run(tiny_pipe, cfg, "lmd", AttentionStore(c.layers), (128, 128), (16, 16))
    scheduler = run.scheduler()
    z = torch.zeros(2, 4, 16, 16)

    def energy(x, rows, t, index):  # row 0 exactly on the threshold, row 1 just above
        return torch.tensor([0.5, 0.5000001], dtype=x.dtype)[rows] + 0 * x.sum((1, 2, 3))

    out = run.guide(z, 0, scheduler.timesteps[0], scheduler, energy)
    assert torch.equal(out[0], z[0])
    assert run.counts.backwards == cfg.iterations(0) and run.counts.box_by_box_backwards == 4


# 5. Precision: what runs differently in fp16.
def test_the_sdxl_vae_decodes_in_fp32_when_the_model_is_fp16(sdxl_tiny_pipe):
    """SDXL's VAE overflows in fp16 (`force_upcast`): the decode runs in fp32 and the VAE is
    fp16 again afterwards; a VAE without `force_upcast` decodes in its own dtype."""
    import contextlib

    pipe = copy.copy(sdxl_tiny_pipe)
    pipe.vae = copy.deepcopy(sdxl_tiny_pipe.vae).to(torch.float16)
    seen = []
    pipe.vae.decoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    backbone = family_of(pipe)
    latents = torch.randn(1, 4, 8, 8)
    pipe.vae.register_to_config(force_upcast=True)
    backbone.decode(latents)
    assert seen == [torch.float32] and pipe.vae.dtype == torch.float16
    pipe.vae.register_to_config(force_upcast=False)
    with contextlib.suppress(RuntimeError):  # fp16 convolutions may not run on a CPU
        backbone.decode(latents)
    assert seen == [torch.float32, torch.float16]

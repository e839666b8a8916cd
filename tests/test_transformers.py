"""Transformer base models on their tiny random models: SD3 (`random:sd3-tiny`: MM-DiT, image
tokens first, CLIP x2 + T5, CFG) and FLUX (`random:flux-tiny`: double/single-stream blocks,
2x2-packed latents, RoPE, guidance-distilled). Plain generation against diffusers' own
pipelines, every phase of LMD observed through the trace, the flow-matching guidance step."""

from __future__ import annotations

import pytest
import torch

from lmd.controller import BoxCache, Controller, LMDConfig
from lmd.controller.attention import AttentionStore, installed
from lmd.controller.backbones import family_of
from lmd.controller.backbones.flux import pack, unpack
from lmd.controller.backbones.joint import flow_noise_level
from lmd.controller.captions import box_prompt, box_tokens
from lmd.controller.engine import Run
from lmd.controller.guidance import AttentionEnergy, Target
from lmd.controller.noise import Cells, gaussian
from lmd.controller.trace import TraceRecorder
from lmd.models import ModelLoadError, load_pipeline
from tests.test_families import CAT_DOG, assert_composed

STEPS = 3
FORCED = {"steps": STEPS, "loss_threshold": 0.0}  # every guidance iteration runs


@pytest.fixture(params=["sd3_tiny_pipe", "flux_tiny_pipe"])
def pipe(request):
    return request.getfixturevalue(request.param)


def traced(pipe, layout=CAT_DOG, seed=3, on_step=None, **config):
    trace = TraceRecorder()
    c = Controller(pipe, LMDConfig(**{**FORCED, **config}))
    return c.render(layout, seed=seed, trace=trace, callback_on_step_end=on_step), trace


def test_the_family_is_read_off_the_components_and_a_folder_loads_by_its_class(
    sd3_tiny_pipe, flux_tiny_pipe, tmp_path
):
    from diffusers import FlowMatchEulerDiscreteScheduler

    for source, family in ((sd3_tiny_pipe, "sd3"), (flux_tiny_pipe, "flux")):
        assert family_of(source).name == family
        assert isinstance(source.scheduler, FlowMatchEulerDiscreteScheduler)  # not DDIM
        folder = tmp_path / f"my-finetune-{family}"  # a name that says nothing
        source.save_pretrained(folder)
        loaded = load_pipeline(str(folder), device="cpu", dtype="fp32")
        assert type(loaded) is type(source) and family_of(loaded).name == family
        assert isinstance(loaded.scheduler, FlowMatchEulerDiscreteScheduler)
        name, p = next(iter(source.transformer.named_parameters()))
        assert torch.equal(p, loaded.transformer.get_parameter(name))
        tok = family_of(loaded).tokenizer
        assert tok("a gray cat").input_ids == family_of(source).tokenizer("a gray cat").input_ids


def test_plain_generation_is_diffusers_own_pipeline(pipe):
    """`method='sd'` through lmd's loop equals `StableDiffusion3Pipeline` / `FluxPipeline`: the
    text encoding, the scheduler (FLUX: its size-dependent shift), the CFG batch (SD3) or the
    guidance input (FLUX), and FLUX's packing."""
    c = Controller(pipe, LMDConfig(steps=STEPS))
    trace = TraceRecorder()
    c.render(CAT_DOG.model_copy(update={"boxes": []}), seed=5, method="sd", trace=trace)
    backbone = c.backbone
    (h, w), hw = c.native_size, backbone.latent_hw(c.native_size)
    noise = gaussian(5, (1, backbone.latent_channels, *hw))
    common = dict(num_inference_steps=STEPS, output_type="latent", height=h, width=w)
    if backbone.name == "flux":
        theirs = pipe(
            "a grassy park", latents=pack(noise), guidance_scale=3.5,
            max_sequence_length=backbone.text_tokens, **common,
        ).images  # fmt: skip
        theirs = unpack(theirs, hw)
    else:
        negative = f"dark, {c.config.quality_negative}"
        theirs = pipe(
            "a grassy park", negative_prompt=negative, latents=noise, guidance_scale=7.5,
            max_sequence_length=backbone.t5_tokens, **common,
        ).images  # fmt: skip
    assert torch.allclose(trace.last("final_latents"), theirs, atol=1e-5, rtol=1e-4)


def test_packing_is_the_pipelines_and_round_trips(flux_tiny_pipe):
    x = torch.randn(2, 16, 6, 10)
    tokens = pack(x)
    assert torch.equal(tokens, flux_tiny_pipe._pack_latents(x, 2, 16, 6, 10))
    assert torch.equal(unpack(tokens, (6, 10)), x)


def test_objects_are_located_in_t5s_tokens(pipe):
    """Token positions index the conditioning sequence: SD3's T5 tokens sit after CLIP's 77,
    FLUX's from 0 (T5 has no beginning-of-text token); the conditioning at those positions is
    T5's encoding of the object's words."""
    backbone = family_of(pipe)
    space = backbone.token_space
    t5 = pipe.text_encoder_3 if backbone.name == "sd3" else pipe.text_encoder_2
    assert space.tokenizer is backbone.tokenizer and "T5" in type(space.tokenizer).__name__
    assert space.offset == (77 if backbone.name == "sd3" else 0)
    prompt = box_prompt("a grassy park", "a gray cat")
    tokens = box_tokens(space, "a grassy park", "a gray cat")
    ids = space.tokenizer(prompt).input_ids
    at = [i - space.offset for i in tokens.guided]
    assert [ids[i] for i in at] == space.tokenizer("a gray cat", add_special_tokens=False).input_ids
    assert tokens.word == tokens.guided[-1]  # "cat"
    text = backbone.encode([prompt], backbone.native_size).embeds
    padded = space.tokenizer(prompt, padding="max_length", max_length=space.length).input_ids
    with torch.no_grad():
        own = t5(torch.tensor([padded]))[0]
    assert torch.allclose(text[0, list(tokens.guided)], own[0, at], atol=1e-5)


def test_every_phase_runs_and_a_seed_gives_one_image(pipe):
    overall = []

    def keep(phase, step, t, latents):
        if phase == "overall":
            overall.append(latents[0].clone())

    result, trace = traced(pipe, on_step=keep)
    c = Controller(pipe, LMDConfig(**FORCED))
    iters = sum(c.config.iterations(i) for i in range(c.config.guidance_until))
    # Per-box guidance and overall guidance, every iteration (threshold 0).
    assert result.counts.backwards == 2 * iters
    assert len(trace.steps("box0.energy")) == len(trace.steps("overall.energy")) == iters
    # Masks: on the latent grid, not empty.
    lh, lw = c.backbone.latent_hw(c.native_size)
    for m in result.masks:
        assert m.shape == (lh, lw) and m.dtype == torch.bool and m.any()
    # Objects move by whole image tokens (2x2 latent cells): packing stays aligned.
    for i in range(2):
        dx, dy = trace.last(f"box{i}.shift").tolist()
        assert dx % 2 == 0 and dy % 2 == 0
    # Composition: inside its own mask, every frame holds the object's shifted latents.
    assert_composed(result, trace)
    # The overall phase's frozen steps keep the composed latents inside the masks.
    union = result.masks[0] | result.masks[1]
    frozen, composed = c.config.frozen_steps, trace.last("composed")
    assert torch.equal(overall[frozen - 1][:, union], composed[frozen][:, union])
    assert not torch.equal(overall[-1][:, union], composed[-1][:, union])
    # Deterministic per seed.
    again, _ = traced(pipe)
    assert again.image.tobytes() == result.image.tobytes()


def test_a_moved_object_is_reused(pipe):
    c = Controller(pipe, LMDConfig(steps=2))
    cache = BoxCache()
    c.render(CAT_DOG, seed=3, cache=cache)
    moved = CAT_DOG.model_copy(
        update={"boxes": [CAT_DOG.boxes[0].model_copy(update={"x": 200}), CAT_DOG.boxes[1]]}
    )
    again = c.render(moved, seed=3, cache=cache)
    assert (again.generated, again.reused) == (0, 2)
    assert again.image.tobytes() == c.render(moved, seed=3).image.tobytes()


def test_one_guidance_update_lowers_the_energy_inside_the_box(pipe):
    cfg = LMDConfig(steps=5, loss_threshold=0.0, guidance_iterations=(1,))
    c = Controller(pipe, cfg)
    backbone = c.backbone
    hw = backbone.latent_hw(c.native_size)
    run = Run(pipe, cfg, "lmd", AttentionStore(c.layers), c.native_size, hw, backbone=backbone)
    names, cells = ["a gray cat", "a red ball"], [Cells(2, 4, 6, 8), Cells(8, 2, 6, 6)]
    tokens = [box_tokens(backbone.token_space, "a park", n) for n in names]
    text = run.encode([box_prompt("a park", n) for n in names])
    targets = [[Target(t.guided, (b,))] for t, b in zip(tokens, cells, strict=True)]
    energy = AttentionEnergy(run, text, targets, ["box0", "box1"])
    scheduler = run.scheduler()
    t = scheduler.timesteps[0]
    z = torch.randn(2, backbone.latent_channels, *hw, generator=torch.Generator().manual_seed(3))
    rows = torch.arange(2)
    with installed(backbone.denoiser, run.store, backbone.capture_processor), torch.no_grad():
        before = energy(z, rows, t, 0)
        out = run.guide(z, 0, t, scheduler, energy)
        after = energy(out, rows, t, 0)
    assert run.counts.backwards == 1 and run.counts.guidance_forwards == 3
    assert (after < before).all(), (before, after)


def test_the_guidance_step_is_ddims_at_the_same_noise_level():
    """The flow-matching step moves x as the paper's DDIM step, sqrt(1 - alpha_bar) on
    variance-preserving latents z = x / s, moves z at the same signal-to-noise ratio."""
    for sigma in (1.0, 0.9, 0.5, 0.1, 0.01):
        s = ((1 - sigma) ** 2 + sigma**2) ** 0.5
        alpha_bar = ((1 - sigma) / s) ** 2  # the VP schedule point of equal SNR
        w = torch.randn(16)  # dE/dx of a linear energy E(x) = <w, x>
        dz = -((1 - alpha_bar) ** 0.5) * (s * w)  # DDIM's update on z (dE/dz = s w)
        dx = -flow_noise_level(sigma) * w
        assert torch.allclose(dx, s * dz, atol=1e-6), sigma


def test_the_guidance_step_reads_the_schedulers_sigma(pipe):
    backbone = family_of(pipe)
    scheduler = backbone.scheduler(4, (16, 16))
    for i, t in enumerate(scheduler.timesteps):
        sigma = float(scheduler.sigmas[i])
        assert backbone.noise_level(scheduler, i, t) == pytest.approx(flow_noise_level(sigma))
    assert backbone.init_sigma(scheduler) == 1.0


def test_flux_has_no_unconditional_batch_and_takes_the_guidance_as_an_input(flux_tiny_pipe):
    c = Controller(flux_tiny_pipe, LMDConfig(steps=2))
    seen = []
    handle = flux_tiny_pipe.transformer.time_text_embed.register_forward_hook(
        lambda m, args, out: seen.append((args[0].shape[0], args[1].tolist()))
    )
    try:
        c.render(CAT_DOG, method="sd")
        c.backbone.guidance_scale = 2.0
        c.render(CAT_DOG, method="sd")
    finally:
        c.backbone.guidance_scale = 3.5
        handle.remove()
    assert seen[0] == (1, [3500.0]) and seen[-1] == (1, [2000.0])  # one row, scaled by 1000


def test_lmd_plus_is_refused_in_one_line(pipe):
    label = family_of(pipe).label
    with pytest.raises(ValueError, match=f"GLIGEN weights.*{label}"):
        Controller(pipe).render(CAT_DOG, method="lmd+")
    name = "random:sd3-tiny" if label == "SD3" else "random:flux-tiny"
    with pytest.raises(ModelLoadError, match=f"{label}.*GLIGEN") as e:
        load_pipeline(name, method="lmd+")
    assert "SDXL" not in str(e.value) and "\n" not in str(e.value)


def test_stories_draw_together_but_consistent_subjects_are_refused(pipe):
    from lmd.controller.consistency import ConsistencySettings

    c = Controller(pipe, LMDConfig(steps=2))
    label = c.backbone.label
    with pytest.raises(ValueError, match=f"not on {label}.*--no-consistency"):
        c.render_story([CAT_DOG, CAT_DOG], consistency=ConsistencySettings(), method="sd")
    story = c.render_story([CAT_DOG, CAT_DOG], consistency=None, method="sd")
    alone = c.render(CAT_DOG, seed=1, method="sd")
    import numpy as np

    a, b = (np.asarray(r.image, dtype=int) for r in (story.results[1], alone))  # seed 0 + 1
    assert np.abs(a - b).max() <= 2  # one batch of two rows: equal to float rounding


def test_sd3_loaded_without_t5_grounds_on_clips_tokens(sd3_tiny_pipe):
    """SD3 loaded with `text_encoder_3=None` (T5's part of the sequence is zeros): objects are
    located in CLIP-L's tokens, at the start of the sequence, and LMD still guides."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline(
        **dict(sd3_tiny_pipe.components, text_encoder_3=None, tokenizer_3=None)
    )
    space = family_of(pipe).token_space
    assert space.tokenizer is pipe.tokenizer and space.offset == 0
    tokens = box_tokens(space, "a grassy park", "a gray cat")
    ids = pipe.tokenizer(box_prompt("a grassy park", "a gray cat")).input_ids
    assert [ids[i] for i in tokens.guided] == pipe.tokenizer(
        "a gray cat", add_special_tokens=False
    ).input_ids
    result = Controller(pipe, LMDConfig(**FORCED)).render(CAT_DOG, seed=1)
    assert result.counts.backwards > 0


def test_each_model_has_its_pipelines_default_steps(flux_tiny_pipe, tmp_path):
    """Steps not given: SD3 and FLUX.1 [dev] draw 28, FLUX.1 [schnell] (no guidance embedding)
    4, as their pipelines; the UNets LMD's 50. Given steps always win."""
    from lmd.api import RenderSettings, load_controller
    from lmd.models import default_steps

    assert [default_steps(f"random:{m}") for m in ("sd3-tiny", "flux-tiny", "sdxl-tiny")] == [
        28, 28, None
    ]  # fmt: skip
    schnell = tmp_path / "schnell-like"
    flux_tiny_pipe.save_pretrained(schnell)
    config = schnell / "transformer" / "config.json"
    config.write_text(
        config.read_text().replace('"guidance_embeds": true', '"guidance_embeds": false')
    )
    assert default_steps(str(schnell)) == 4
    drawn = load_controller(RenderSettings(model="random:flux-tiny", device="cpu", sam=False))
    assert drawn.config.steps == 28
    given = RenderSettings(model="random:flux-tiny", device="cpu", sam=False, steps=3)
    assert load_controller(given).config.steps == 3

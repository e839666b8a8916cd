"""Model families on their tiny random models: SD 2.x (`random:sd2-tiny`, v-prediction) and
SDXL (`random:sdxl-tiny`, two text encoders, pooled embeddings and size ids). Every phase
of LMD, observed through the trace; plain SD checked against diffusers' own pipeline."""

from __future__ import annotations

import pytest
import torch
from lmd.layouts.model import Box, Layout

from lmd.controller import BoxCache, Controller, LMDConfig
from lmd.controller.attention import AttentionStore, installed
from lmd.controller.captions import box_prompt, box_tokens
from lmd.controller.engine import Run
from lmd.controller.family import family_of
from lmd.controller.guidance import AttentionEnergy, Target
from lmd.controller.noise import Cells, gaussian
from lmd.controller.trace import TraceRecorder
from lmd.models import ModelLoadError, load_pipeline

STEPS = 4
FORCED = {"steps": STEPS, "loss_threshold": 0.0}  # every guidance iteration runs
CAT_DOG = Layout(
    boxes=[Box(name="a gray cat", x=40, y=220, w=160, h=200),
           Box(name="a dog", x=300, y=150, w=180, h=260)],
    background="a grassy park", negative="dark",
)  # fmt: skip


@pytest.fixture(params=["sd2_tiny_pipe", "sdxl_tiny_pipe"])
def pipe(request):
    return request.getfixturevalue(request.param)


def assert_composed(result, trace) -> None:
    """Inside its own mask (not another's), every frame of the composition holds the object's
    latents from its own generation, shifted into its box (the two boxes of `CAT_DOG`)."""
    composed = trace.last("composed")
    for i in range(2):
        dx, dy = trace.last(f"box{i}.shift").tolist()
        frames = torch.cat(
            [trace.last(f"box{i}.initial_latents")[None], trace.stacked(f"box{i}.latents")]
        )
        own = result.masks[i] & ~result.masks[1 - i]
        rolled = torch.roll(frames, (dy, dx), (-2, -1))
        assert own.any() and torch.equal(composed[:, :, own], rolled[:, :, own])


def traced(pipe, layout=CAT_DOG, **config):
    trace = TraceRecorder()
    c = Controller(pipe, LMDConfig(**{**FORCED, **config}))
    return c.render(layout, seed=3, trace=trace), trace


def test_the_family_is_read_off_the_components_not_the_name(
    tiny_pipe, sd2_tiny_pipe, sdxl_tiny_pipe, tmp_path
):
    assert family_of(tiny_pipe).name == "sd1"
    assert family_of(sd2_tiny_pipe).name == "sd2"
    assert family_of(sdxl_tiny_pipe).name == "sdxl"
    assert sd2_tiny_pipe.scheduler.config.prediction_type == "v_prediction"
    for source, family in ((sdxl_tiny_pipe, "sdxl"), (sd2_tiny_pipe, "sd2")):
        folder = tmp_path / f"my-finetune-{family}"  # a name that says nothing
        source.save_pretrained(folder)
        loaded = load_pipeline(str(folder), device="cpu", dtype="fp32")
        assert type(loaded) is type(source) and family_of(loaded).name == family
        assert loaded.scheduler.config.prediction_type == source.scheduler.config.prediction_type
        for name, p in source.unet.named_parameters():
            assert torch.equal(p, loaded.unet.get_parameter(name)), name
            break


def test_sdxl_guides_the_mid_block_and_the_first_stack_of_the_first_up_block(sdxl_tiny_pipe):
    c = Controller(sdxl_tiny_pipe)
    unet = sdxl_tiny_pipe.unet
    assert len(unet.up_blocks[0].attentions) > 1  # the rule leaves the other stacks out
    mid = [n for n in c.layers.guidance if n.startswith("mid_block.")]
    up = [n for n in c.layers.guidance if not n.startswith("mid_block.")]
    assert len(mid) == len(unet.mid_block.attentions[0].transformer_blocks) == 2
    assert up and all(n.startswith("up_blocks.0.attentions.0.") for n in up)
    assert c.layers.mask.startswith("down_blocks.2.attentions.")


def test_sdxl_conditioning_has_pooled_text_and_size_ids_per_row(sdxl_tiny_pipe):
    cfg = LMDConfig(steps=2)
    run = Run(sdxl_tiny_pipe, cfg, "lmd", AttentionStore(Controller(sdxl_tiny_pipe).layers),
              (96, 64), (12, 8))  # fmt: skip
    text = run.encode(["a park with a cat", "a park with a dog"])
    hidden = sdxl_tiny_pipe.unet.config.cross_attention_dim
    assert text.embeds.shape == (2, 77, hidden)
    assert text.added["text_embeds"].shape == (2, 32)
    assert text.added["time_ids"].tolist() == [[96, 64, 0, 0, 96, 64]] * 2  # (h, w), no crop
    assert not torch.equal(text.added["text_embeds"][0], text.added["text_embeds"][1])
    both = text.cat([run.encode(["dark"]).expand(2), text])
    assert torch.equal(both.rows(slice(2, None)).added["text_embeds"], text.added["text_embeds"])


def test_plain_sd_is_diffusers_own_pipeline(pipe):
    """`method='sd'` runs the family's text encoding, CFG and scheduler exactly as the
    family's diffusers pipeline does (v-prediction for SD 2.x, size ids for SDXL)."""
    c = Controller(pipe, LMDConfig(steps=3))
    trace = TraceRecorder()
    c.render(CAT_DOG.model_copy(update={"boxes": []}), seed=5, method="sd", trace=trace)
    h, w = c.native_size
    noise = gaussian(5, (4, h // 8, w // 8))[None]
    negative = f"dark, {c.config.quality_negative}"
    theirs = pipe(
        "a grassy park", negative_prompt=negative, latents=noise,
        num_inference_steps=3, guidance_scale=7.5, output_type="latent", height=h, width=w,
    ).images  # fmt: skip
    assert torch.allclose(trace.last("final_latents"), theirs, atol=1e-5, rtol=1e-4)


def test_every_phase_runs_on_the_family(pipe):
    result, trace = traced(pipe)
    c = Controller(pipe, LMDConfig(**FORCED))
    iters = sum(c.config.iterations(i) for i in range(c.config.guidance_until))
    # Per-box guidance and overall guidance, every iteration (threshold 0).
    assert result.counts.backwards == 2 * iters
    assert len(trace.steps("box0.energy")) == len(trace.steps("overall.energy")) == iters
    # Masks: on the latent grid, each inside the image and not empty.
    lh, lw = c.native_size[0] // 8, c.native_size[1] // 8
    for m in result.masks:
        assert m.shape == (lh, lw) and m.dtype == torch.bool and m.any()
    # Composition: inside its own mask, every frame holds the object's shifted latents.
    assert_composed(result, trace)
    # Overall generation with every step frozen keeps the composed objects to the end.
    frozen, trace_f = traced(pipe, frozen_ratio=1.0)
    union = frozen.masks[0] | frozen.masks[1]
    final = trace_f.last("final_latents")[0]
    assert torch.equal(final[:, union], trace_f.last("composed")[-1][:, union])
    assert not torch.equal(final[:, ~union], trace_f.last("composed")[-1][:, ~union])


def test_attention_transfer_adds_to_the_overall_energy(pipe):
    _, with_transfer = traced(pipe)
    _, without = traced(pipe, transfer_weight=0.0)
    first = with_transfer.stacked("overall.energy")[0]
    assert torch.equal(with_transfer.last("composed"), without.last("composed"))
    assert float(first) > float(without.stacked("overall.energy")[0]) + 1e-6


def test_same_seed_same_image_and_a_moved_object_is_reused(pipe):
    c = Controller(pipe, LMDConfig(**FORCED))
    cache = BoxCache()
    first = c.render(CAT_DOG, seed=3, cache=cache)
    assert c.render(CAT_DOG, seed=3).image.tobytes() == first.image.tobytes()
    assert c.render(CAT_DOG, seed=4).image.tobytes() != first.image.tobytes()
    moved = CAT_DOG.model_copy(
        update={"boxes": [CAT_DOG.boxes[0].model_copy(update={"x": 200}), CAT_DOG.boxes[1]]}
    )
    again = c.render(moved, seed=3, cache=cache)
    assert (again.generated, again.reused) == (0, 2)
    assert again.image.tobytes() == c.render(moved, seed=3).image.tobytes()


def test_batched_boxes_equal_boxes_drawn_alone(pipe):
    """Rows never mix: each box's text, pooled embedding and size ids stay with its row."""
    both, a = traced(pipe)
    dog_alone = Layout(boxes=[CAT_DOG.boxes[1]], background=CAT_DOG.background, negative="dark")
    _, b = traced(pipe, layout=dog_alone)
    assert torch.allclose(a.stacked("box1.latents"), b.stacked("box0.latents"), atol=1e-4)


def test_one_guidance_update_lowers_the_energy_inside_the_box(pipe):
    cfg = LMDConfig(steps=5, loss_threshold=0.0, guidance_iterations=(1,))
    c = Controller(pipe, cfg)
    (h, w), hw = c.native_size, (c.native_size[0] // 8, c.native_size[1] // 8)
    run = Run(pipe, cfg, "lmd", AttentionStore(c.layers), (h, w), hw)
    names, cells = ["a gray cat", "a red ball"], [Cells(1, 4, 6, 8), Cells(9, 2, 5, 5)]
    tokens = [box_tokens(pipe.tokenizer, "a park", n) for n in names]
    text = run.encode([box_prompt("a park", n) for n in names])
    targets = [[Target(t.guided, (b,))] for t, b in zip(tokens, cells, strict=True)]
    energy = AttentionEnergy(run, text, targets, ["box0", "box1"])
    scheduler = run.scheduler()
    t = scheduler.timesteps[0]
    z = torch.randn(2, 4, *hw, generator=torch.Generator().manual_seed(3))
    rows = torch.arange(2)
    with installed(pipe.unet, run.store), torch.no_grad():
        before = energy(scheduler.scale_model_input(z, t), rows, t, 0)
        out = run.guide(z, 0, t, scheduler, energy)
        after = energy(scheduler.scale_model_input(out, t), rows, t, 0)
    assert run.counts.backwards == 1
    assert (after < before).all(), (before, after)


def test_lmd_plus_on_sdxl_is_one_clear_error_before_any_work(sdxl_tiny_pipe):
    with pytest.raises(ValueError, match="GLIGEN weights.*SDXL"):
        Controller(sdxl_tiny_pipe).render(CAT_DOG, method="lmd+")
    with pytest.raises(ModelLoadError, match="SDXL.*GLIGEN"):
        load_pipeline("random:sdxl-tiny", method="lmd+")


def test_the_refiner_finishes_an_sdxl_image(sdxl_tiny_pipe, tiny_refiner_dir):
    from lmd.refiner import load_refiner

    refiner = load_refiner(str(tiny_refiner_dir), device="cpu", dtype="fp32")
    refiner.num_inference_steps = 4
    plain = Controller(sdxl_tiny_pipe, LMDConfig(steps=2)).render(CAT_DOG)
    refined = Controller(sdxl_tiny_pipe, LMDConfig(steps=2), refine=refiner).render(CAT_DOG)
    assert refined.image.size == plain.image.size
    assert refined.image.tobytes() != plain.image.tobytes()

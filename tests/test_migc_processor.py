"""The MIGC processor on a real (tiny, random) UNet: installed for a call and removed after, it
changes only the conditional rows while MIGC is on, and nothing at all while it is off."""

from __future__ import annotations

import pytest
import torch

from lmd.controller.attention import wrapped
from lmd.controller.methods.migc import (
    MIGCState,
    RowInstances,
    box_masks,
    processors,
    random_shaders,
)

BOXES = [(0.05, 0.1, 0.5, 0.6), (0.45, 0.3, 0.95, 0.9)]
NAMES = ["a red car", "a blue dog"]
IMAGE_HW, LATENT_HW = (128, 128), (16, 16)


def encode(pipe, texts):
    with torch.no_grad():
        return pipe.encode_prompt(texts, "cpu", 1, False)[0]


def pooled(pipe, texts):
    tok = pipe.tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        return pipe.text_encoder(tok.input_ids).pooler_output


def instances(pipe, names=NAMES, boxes=BOXES) -> RowInstances:
    masks, background = box_masks(boxes, IMAGE_HW, LATENT_HW)
    return RowInstances(
        encode(pipe, names), pooled(pipe, names), torch.tensor(boxes), masks, background
    )


@pytest.fixture(scope="module")
def call(tiny_pipe):
    """(run(processors or None) -> UNet output for [uncond, cond] rows)."""
    unet = tiny_pipe.unet
    text = torch.cat([encode(tiny_pipe, [""]), encode(tiny_pipe, ["a car and a dog on a road"])])
    latents = torch.randn(1, 4, *LATENT_HW, generator=torch.Generator().manual_seed(0))
    latents = latents.expand(2, -1, -1, -1)

    def run(procs=None, rows=2, embeds=None):
        embeds = text if embeds is None else embeds
        with torch.no_grad():
            if procs is None:
                return unet(latents[:rows], 500, encoder_hidden_states=embeds[:rows])[0]
            with wrapped(unet, procs):
                return unet(latents[:rows], 500, encoder_hidden_states=embeds[:rows])[0]

    return run


def test_on_changes_the_conditional_row_only(tiny_pipe, call):
    shaders = random_shaders(tiny_pipe, seed=1)
    state = MIGCState(rows=(instances(tiny_pipe),), cond=slice(1, None), shade=True)
    plain, shaded = call(), call(processors(shaders, state))
    torch.testing.assert_close(shaded[0], plain[0], rtol=1e-6, atol=1e-6)
    assert (shaded[1] - plain[1]).abs().max() > 1e-3


def test_off_is_the_base_models_own_attention(tiny_pipe, call):
    shaders = random_shaders(tiny_pipe, seed=1)
    state = MIGCState(rows=(instances(tiny_pipe),), cond=slice(1, None), shade=False)
    torch.testing.assert_close(call(processors(shaders, state)), call(), rtol=0, atol=0)
    masks, background = box_masks([], IMAGE_HW, LATENT_HW)
    empty = RowInstances(torch.zeros(0, 77, 32), torch.zeros(0, 32), torch.zeros(0, 4), masks,
                         background)  # fmt: skip
    state.shade, state.rows = True, (empty,)  # no instances: plain too
    torch.testing.assert_close(call(processors(shaders, state)), call(), rtol=0, atol=0)


def test_removed_after_the_phase(tiny_pipe, call):
    before = dict(tiny_pipe.unet.attn_processors)
    state = MIGCState(rows=(instances(tiny_pipe),), cond=slice(1, None), shade=True)
    call(processors(random_shaders(tiny_pipe), state))
    after = tiny_pipe.unet.attn_processors
    assert all(after[k] is v for k, v in before.items())


def test_fuse_on_layers_without_migc(tiny_pipe, call):
    """InferenceV2 / MIGC++: a layer without MIGC weights fuses instance outputs by mask."""
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    state = MIGCState(rows=(instances(tiny_pipe),), cond=slice(1, None), fuse=True)
    fused = call(processors({layer: None}, state))
    plain = call()
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-6, atol=1e-6)
    assert (fused[1] - plain[1]).abs().max() > 1e-4


def test_slot_order_from_a_seeded_generator(tiny_pipe, call):
    shaders = random_shaders(tiny_pipe, seed=1)

    def shaded(seed):
        gen = torch.Generator().manual_seed(seed)
        state = MIGCState(rows=(instances(tiny_pipe),), cond=slice(1, None), shade=True,
                          generator=gen)  # fmt: skip
        return call(processors(shaders, state))[1]

    torch.testing.assert_close(shaded(5), shaded(5), rtol=0, atol=0)
    assert not torch.equal(shaded(5), shaded(6))


def test_conditional_rows_each_with_their_instances(tiny_pipe, call):
    shaders = random_shaders(tiny_pipe, seed=1)
    cond = torch.cat([encode(tiny_pipe, ["a car and a dog on a road"])] * 2)
    one, other = instances(tiny_pipe), instances(tiny_pipe, NAMES[:1], BOXES[:1])
    both = call(processors(shaders, MIGCState(rows=(one, other), shade=True)), embeds=cond)
    alone = call(processors(shaders, MIGCState(rows=(one,), shade=True)), rows=1, embeds=cond)
    torch.testing.assert_close(both[0], alone[0], rtol=1e-5, atol=1e-5)
    assert (both[0] - both[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="instances for 2 rows but the call has 1"):
        call(processors(shaders, MIGCState(rows=(one, other), shade=True)), rows=1, embeds=cond)


def test_migc_plus_runs_in_the_unet(tiny_pipe, call):
    shaders = random_shaders(tiny_pipe, seed=2, plus=True)
    for shader in shaders.values():
        torch.nn.init.constant_(shader.gamma, 0.5)
    state = MIGCState(rows=(instances(tiny_pipe),), cond=slice(1, None), shade=True)
    out, plain = call(processors(shaders, state)), call()
    assert torch.isfinite(out).all()
    assert (out[1] - plain[1]).abs().max() > 1e-3


def test_row_instances_from_the_backbone_are_what_the_layer_reads(tiny_pipe):
    from lmd.controller.backbones import family_of
    from lmd.controller.methods.migc import row_instances

    row = row_instances(family_of(tiny_pipe), NAMES, BOXES, IMAGE_HW, LATENT_HW)
    by_hand = instances(tiny_pipe)
    for field in ("embeds", "pooled", "boxes", "masks", "background"):
        torch.testing.assert_close(getattr(row, field), getattr(by_hand, field))
    assert len(row_instances(family_of(tiny_pipe), [], [], IMAGE_HW, LATENT_HW)) == 0

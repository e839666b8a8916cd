"""Attention capture processors: which layers, what they keep, and that they change nothing."""

import contextlib

import pytest
import torch
from diffusers import UNet2DConditionModel

from lmd.controller.attention import AttentionStore, StopForward, installed
from lmd.controller.backbones.unet import find_hooked_layers
from lmd.controller.backbones.unet import grid_at as layer_resolution


def sd15_shaped_unet():
    """SD 1.5's block layout (4 levels, 2 layers per block) with toy widths."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
    )


def test_layers_are_chosen_by_position_on_sd15_and_tiny(tiny_pipe):
    layers = find_hooked_layers(sd15_shaped_unet())
    assert layers.guidance == [
        "mid_block.attentions.0.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.0.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.1.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.2.transformer_blocks.0.attn2",
    ]
    assert layers.mask == "down_blocks.2.attentions.1.transformer_blocks.0.attn2"
    tiny = find_hooked_layers(tiny_pipe.unet)
    assert tiny.mask == "down_blocks.1.attentions.0.transformer_blocks.0.attn2"
    assert tiny.guidance[0].startswith("mid_block") and tiny.guidance[-1].startswith("up_blocks.1")


def _inputs(unet, rows=2, tokens=6):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(rows, 4, 16, 16, generator=g)
    dim = unet.config.cross_attention_dim
    uncond = torch.randn(1, tokens, dim, generator=g).expand(rows, -1, -1)
    cond = torch.randn(rows, tokens, dim, generator=g)
    return torch.cat([z, z]), torch.cat([uncond, cond])


def test_capture_keeps_only_the_conditional_rows_and_chosen_columns_and_changes_nothing():
    unet = sd15_shaped_unet()
    x, emb = _inputs(unet)
    layer = "mid_block.attentions.0.transformer_blocks.0.attn2"
    module = unet.get_submodule(layer)
    seen = {}
    hook = module.register_forward_pre_hook(
        lambda m, args, kwargs: seen.update(h=args[0], e=kwargs["encoder_hidden_states"]),
        with_kwargs=True,
    )
    with torch.no_grad():
        plain = unet(x, 10, encoder_hidden_states=emb).sample
    store = AttentionStore(find_hooked_layers(unet))
    columns = torch.tensor([[1, 4], [2, 3]])
    with installed(unet, store), torch.no_grad():
        store.set({layer}, columns, cond=slice(2, None))
        captured = unet(x, 10, encoder_hidden_states=emb).sample
        maps = store.maps
    hook.remove()
    assert torch.allclose(plain, captured, atol=1e-5)
    assert set(maps) == {layer}
    rows, heads, pixels, c = maps[layer].shape
    assert (rows, heads, c) == (2, module.heads, 2)
    with torch.no_grad():
        q = module.head_to_batch_dim(module.to_q(seen["h"]))
        k = module.head_to_batch_dim(module.to_k(seen["e"]))
        probs = module.get_attention_scores(q, k).reshape(4, module.heads, pixels, -1)
    for r in range(2):  # conditional rows are the second half of [uncond, cond]
        expected = probs[2 + r][..., columns[r]]
        assert torch.allclose(maps[layer][r], expected, atol=1e-5)


def test_early_stop_only_when_armed_and_processors_are_restored():
    unet = sd15_shaped_unet()
    before = {k: type(v) for k, v in unet.attn_processors.items()}
    x, emb = _inputs(unet)
    store = AttentionStore(find_hooked_layers(unet))
    with installed(unet, store), torch.no_grad():
        store.set(store.layers.guidance, torch.tensor([[1], [2], [1], [2]]), stop_early=True)
        with pytest.raises(StopForward):
            unet(x, 10, encoder_hidden_states=emb)
        assert set(store.maps) == set(store.layers.guidance)
        store.clear()
        assert unet(x, 10, encoder_hidden_states=emb).sample.shape == x.shape
    assert {k: type(v) for k, v in unet.attn_processors.items()} == before


def test_gradient_through_the_early_stop_equals_the_full_forward():
    unet = sd15_shaped_unet()
    x, emb = _inputs(unet, rows=1)
    z, cond = x[:1].clone(), emb[1:]
    store = AttentionStore(find_hooked_layers(unet))
    grads = []
    with installed(unet, store):
        for stop in (True, False):
            zz = z.clone().requires_grad_(True)
            store.set(store.layers.guidance, torch.tensor([[2, 3]]), grad=True, stop_early=stop)
            with contextlib.suppress(StopForward):
                unet(zz, 10, encoder_hidden_states=cond)
            loss = sum((m**2).sum() for m in store.maps.values())
            grads.append(torch.autograd.grad(loss, zz)[0])
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert grads[0].abs().sum() > 0


def test_layer_resolution():
    assert layer_resolution(64, (16, 16)) == (8, 8)
    assert layer_resolution(6, (12, 8)) == (3, 2)
    with pytest.raises(ValueError):
        layer_resolution(7, (16, 16))


class Counting:
    """A user's attention processor: SDPA that counts its calls."""

    def __init__(self):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.inner, self.calls = AttnProcessor2_0(), 0

    def __call__(self, attn, hidden_states, *args, **kwargs):
        self.calls += 1
        return self.inner(attn, hidden_states, *args, **kwargs)


def test_a_render_leaves_every_processor_the_user_set_and_runs_it(tiny_pipe):
    from lmd.layouts.model import Box, Layout

    from lmd.controller import Controller, LMDConfig

    unet = tiny_pipe.unet
    layers = find_hooked_layers(unet)
    hooked = {f"{n}.processor" for n in (*layers.guidance, layers.mask)}
    early = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"
    late = "up_blocks.2.attentions.0.transformer_blocks.0.attn2.processor"  # after the guided
    guided = f"{layers.guidance[0]}.processor"
    before = unet.attn_processors
    mine = {early: Counting(), late: Counting(), guided: Counting()}
    unet.set_attn_processor({**before, **mine})
    try:
        layout = Layout(boxes=[Box(name="a cat", x=10, y=10, w=60, h=60)], background="a park")
        result = Controller(tiny_pipe, LMDConfig(steps=2, loss_threshold=0.0)).render(layout)
        after = unet.attn_processors
        assert all(after[k] is v for k, v in {**before, **mine}.items() if k not in hooked)
        assert after[guided] is mine[guided]  # a hooked layer gets its own processor back
        # Each ran in every UNet call that reached it: a guidance forward stops after the
        # last guided layer; a hooked layer computes its output with its own processor.
        assert result.counts.guidance_forwards > 0
        assert mine[early].calls == mine[guided].calls == result.counts.forwards
        assert mine[late].calls == result.counts.forwards - result.counts.guidance_forwards
    finally:
        unet.set_attn_processor(before)

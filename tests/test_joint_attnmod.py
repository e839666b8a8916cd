"""Attention modulation on joint attention (SD3, FLUX): `joint_attend` computes each kind of
layer's attention (SD3's joint blocks and image-only `attn2`, FLUX's double- and single-stream
blocks) with a bias on the image-query x text-key logits and a scale on the image-query x
image-key logits, against the softmax written out; the hooks put the masks and weights on the
objects' T5 positions. Renders on both tiny models: `test_attnmod.py`."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.embeddings import apply_rotary_emb

from lmd.controller import LMDConfig
from lmd.controller.attention import AttentionStore, wrapped
from lmd.controller.backbones import family_of
from lmd.controller.backbones.joint_attend import joint_attend
from lmd.controller.backbones.joint_capture import JointOrder
from lmd.controller.captions import overall_tokens
from lmd.controller.engine import Run
from lmd.controller.methods.attnmod import AttnModHooks, AttnModSettings
from lmd.controller.noise import Cells
from lmd.controller.phase import Phase, PhaseObject, PhaseRow
from tests.test_joint_attention import forward_once

LAYERS = [
    ("sd3_tiny_pipe", "transformer_blocks.1.attn"),  # joint block: image first
    ("sd3_tiny_pipe", "transformer_blocks.0.attn2"),  # SD3.5's image-only attention
    ("flux_tiny_pipe", "transformer_blocks.3.attn"),  # double-stream: text first
    ("flux_tiny_pipe", "single_transformer_blocks.1.attn"),  # single-stream: one sequence
]


class Written:
    """A joint layer's attention with the softmax written out over the whole sequence, a
    logit bias on its image-query x text-key block and a factor on its image x image block;
    checks `joint_attend` against it on the layer's real inputs."""

    def __init__(self, order: JointOrder, bias_seed: int, scale: float):
        self.order, self.bias_seed, self.scale = order, bias_seed, scale
        self.checked = 0

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None, **kwargs):  # fmt: skip
        e = encoder_hidden_states
        t = e.shape[1] if e is not None else self.order.text_tokens
        n = hidden_states.shape[1] + (t if e is not None else 0)
        pixels = n - t
        g = torch.Generator().manual_seed(self.bias_seed)
        bias = torch.randn(hidden_states.shape[0], 1, pixels, t, generator=g)
        if t:
            bias[..., : t // 2 : 3] = float("-inf")  # masked columns
        mine = joint_attend(attn, hidden_states, e, image_rotary_emb, self.order,
                            text_bias=bias if t else None, image_scale=self.scale)  # fmt: skip
        theirs = self.written(attn, hidden_states, e, image_rotary_emb, bias, t)
        for a, b in zip(_tuple(mine), _tuple(theirs), strict=True):
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
        self.checked += 1
        return mine

    def written(self, attn, hidden_states, e, rotary, bias, t):
        def heads(x, norm):
            x = x.unflatten(-1, (attn.heads, -1))
            return norm(x) if norm is not None else x

        q = heads(attn.to_q(hidden_states), attn.norm_q)
        k = heads(attn.to_k(hidden_states), attn.norm_k)
        v = heads(attn.to_v(hidden_states), None)
        first = self.order.text_first
        if e is not None:
            eq = heads(attn.add_q_proj(e), attn.norm_added_q)
            ek = heads(attn.add_k_proj(e), attn.norm_added_k)
            ev = heads(attn.add_v_proj(e), None)
            pairs = ((eq, q), (ek, k), (ev, v))
            q, k, v = (torch.cat([a, b] if first else [b, a], 1) for a, b in pairs)
        if rotary is not None:
            q = apply_rotary_emb(q, rotary, sequence_dim=1)
            k = apply_rotary_emb(k, rotary, sequence_dim=1)
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        n = q.shape[2]
        text = torch.arange(n) < t if first else torch.arange(n) >= n - t
        logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        image = ~text
        block = logits[:, :, image][..., image] * self.scale
        logits[:, :, image.nonzero()[:, 0, None], image.nonzero()[:, 0]] = block
        if t:
            rows = image.nonzero()[:, 0, None]
            logits[:, :, rows, text.nonzero()[:, 0]] += bias
        out = (logits.softmax(-1) @ v).transpose(1, 2).flatten(2)
        if e is None:
            return attn.to_out[1](attn.to_out[0](out)) if getattr(attn, "to_out", None) else out
        image_out = attn.to_out[1](attn.to_out[0](out[:, image]))
        text_out = out[:, text]
        if not attn.context_pre_only:
            text_out = attn.to_add_out(text_out)
        return image_out, text_out


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


@pytest.mark.parametrize(("fixture", "layer"), LAYERS)
def test_joint_attend_is_the_layers_attention_with_the_changes(fixture, layer, request):
    backbone = family_of(request.getfixturevalue(fixture))
    plain = forward_once(backbone)
    order = backbone.order if layer.endswith(".attn") else JointOrder(backbone.text_first, 0)
    unchanged = Written(order, 0, 1.0)
    with wrapped(backbone.denoiser, {layer: lambda inner: unchanged}):
        same = forward_once(backbone)
    assert unchanged.checked == 1
    changed = Written(order, 1, 1.6)
    with wrapped(backbone.denoiser, {layer: lambda inner: changed}):
        other = forward_once(backbone)
    assert changed.checked == 1

    # Without changes (no bias, scale 1) the layer computes what its own processor does.
    def no_change(inner):
        def processor(attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                      image_rotary_emb=None):  # fmt: skip
            return joint_attend(attn, hidden_states, encoder_hidden_states, image_rotary_emb,
                                order)  # fmt: skip

        return processor

    with wrapped(backbone.denoiser, {layer: no_change}):
        own = forward_once(backbone)
    assert torch.allclose(own, plain, atol=1e-5)
    assert not torch.allclose(other, same, atol=1e-3)


def test_the_masks_and_weights_act_on_the_objects_t5_positions(sd3_tiny_pipe):
    """SD3: each object's T5 tokens (after CLIP's 77) are masked outside its box and weighted
    as instances; the prompt's other T5 words are shared; CLIP's tokens stay unmasked."""
    pipe = sd3_tiny_pipe
    backbone = family_of(pipe)
    space = backbone.token_space
    run = Run(pipe, LMDConfig(steps=10), "attnmod", AttentionStore(None), (128, 128), (16, 16),
              backbone=backbone)  # fmt: skip
    prompt = "a grassy park with a gray cat, a red ball"
    cat, ball = overall_tokens(space, "a grassy park", ["a gray cat", "a red ball"])
    objects = (
        PhaseObject("a gray cat", "a gray cat", Cells(0, 0, 8, 16), (0, 0, 0.5, 1), cat, 0),
        PhaseObject("a red ball", "a red ball", Cells(8, 0, 8, 8), (0.5, 0, 1, 0.5), ball, 1),
    )
    phase = Phase("image", (PhaseRow(prompt, objects),), (128, 128), (16, 16), 10)
    hooks = AttnModHooks(run, phase, AttnModSettings())
    hooks.step(0, None)
    grid = backbone.coarsest_grid((16, 16))
    bias = hooks.bias(grid[0] * grid[1], "cpu", torch.float32)[0, 0].view(*grid, -1)
    assert bias.shape[-1] == backbone.text_tokens
    assert min(cat.guided) >= space.offset == 77
    left, top_right, bottom_right = bias[-1, 0], bias[0, -1], bias[-1, -1]
    assert (
        torch.isinf(left[list(ball.guided)]).all() and torch.isfinite(left[list(cat.guided)]).all()
    )
    assert torch.isinf(top_right[list(cat.guided)]).all()
    assert torch.isinf(bottom_right[list(cat.guided) + list(ball.guided)]).all()
    assert (bias[..., :77] == 0).all()  # CLIP's tokens: unmasked, weight 1
    words = space.tokenizer(prompt).input_ids
    shared = [77 + i for i in range(len(words) - 1) if 77 + i not in cat.guided + ball.guided]
    w_global, w_instance = AttnModSettings().weights(0, 10)
    assert torch.allclose(left[shared], torch.tensor(w_global).log())
    assert torch.allclose(left[list(cat.guided)], torch.tensor(w_instance).log())
    assert (left[77 + len(words) - 1 :] == 0).all()  # the end token and the padding

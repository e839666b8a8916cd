"""Attention capture in joint attention (SD3, FLUX): the maps are the image-query x text-key
block of the attention the layer computes, renormalised over the text columns.

The reference is the layer's attention written out with an explicit softmax over the whole
joint sequence in the model's own order (SD3: image then text; FLUX: text then image, with
the rotary embedding); its output equals the layer's own processor's, so its probabilities are
the ones the model computes."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.embeddings import apply_rotary_emb

from lmd.controller.attention import AttentionStore, installed, wrapped
from lmd.controller.backbones import HookedLayers, family_of
from lmd.controller.backbones.joint_capture import JointCapture, JointOrder, text_maps
from lmd.controller.noise import gaussian

CASES = [
    ("sd3_tiny_pipe", "transformer_blocks.1.attn"),
    ("flux_tiny_pipe", "transformer_blocks.3.attn"),  # double-stream
    ("flux_tiny_pipe", "single_transformer_blocks.1.attn"),  # single-stream: one sequence
]


class ExplicitJoint:
    """A joint attention layer's processor with the softmax written out; keeps the
    probabilities [rows, heads, N, N] over the joint sequence in the model's order."""

    def __init__(self, text_first: bool):
        self.text_first = text_first
        self.probs = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 image_rotary_emb=None, **kwargs):  # fmt: skip
        def heads(x, norm):
            x = x.unflatten(-1, (attn.heads, -1))
            return norm(x) if norm is not None else x

        q, k = (
            heads(attn.to_q(hidden_states), attn.norm_q),
            heads(attn.to_k(hidden_states), attn.norm_k),
        )
        v = heads(attn.to_v(hidden_states), None)
        n = hidden_states.shape[1]
        if encoder_hidden_states is not None:
            e = encoder_hidden_states
            eq = heads(attn.add_q_proj(e), attn.norm_added_q)
            ek = heads(attn.add_k_proj(e), attn.norm_added_k)
            ev = heads(attn.add_v_proj(e), None)
            pairs = [(eq, q), (ek, k), (ev, v)] if self.text_first else [(q, eq), (k, ek), (v, ev)]
            q, k, v = (torch.cat(p, dim=1) for p in pairs)
        if image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        self.probs = ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).softmax(-1)
        out = (self.probs @ v).transpose(1, 2).flatten(2)
        if encoder_hidden_states is None:
            return attn.to_out[1](attn.to_out[0](out)) if getattr(attn, "to_out", None) else out
        t = encoder_hidden_states.shape[1]
        text, image = (out[:, :t], out[:, t:]) if self.text_first else (out[:, n:], out[:, :n])
        image = attn.to_out[1](attn.to_out[0](image))
        if not attn.context_pre_only:
            text = attn.to_add_out(text)
        return image, text


def forward_once(backbone, seed: int = 0):
    """One conditional denoiser forward on random latents at the native size."""
    h, w = backbone.native_size
    hw = backbone.latent_hw((h, w))
    text = backbone.encode(["a grassy park with a gray cat"], (h, w))
    scheduler = backbone.scheduler(4, hw)
    z = gaussian(seed, (1, backbone.latent_channels, *hw))
    with torch.no_grad():
        return backbone.forward(z, scheduler.timesteps[1], text, {})


def image_and_text(backbone, probs: torch.Tensor) -> torch.Tensor:
    """The image-query x text-key block of the reference's probabilities."""
    t = backbone.text_tokens
    n = probs.shape[-1]
    if backbone.text_first:
        return probs[:, :, t:, :t]
    return probs[:, :, : n - t, n - t :]


@pytest.mark.parametrize(("fixture", "layer"), CASES)
def test_maps_are_the_layers_image_to_text_attention_renormalised(fixture, layer, request):
    pipe = request.getfixturevalue(fixture)
    backbone = family_of(pipe)
    transformer = backbone.denoiser
    plain = forward_once(backbone)
    reference = ExplicitJoint(backbone.text_first)
    with wrapped(transformer, {layer: lambda inner: reference}):
        explicit = forward_once(backbone)
    assert torch.allclose(explicit, plain, atol=1e-5)  # the reference is the model's attention
    block = image_and_text(backbone, reference.probs)
    h, w = backbone.coarsest_grid(backbone.latent_hw(backbone.native_size))
    # The model's order matters: read as if text and image were the other way round, the same
    # layer gives other maps.
    swapped = JointOrder(not backbone.text_first, backbone.text_tokens)
    for renormalise, expected in ((True, block / block.sum(-1, keepdim=True)), (False, block)):
        maps = captured(backbone, layer, backbone.order, renormalise)
        heads = transformer.config.num_attention_heads
        assert maps.shape == (1, heads, h * w, backbone.text_tokens)
        assert torch.allclose(maps, expected, atol=1e-5), (maps - expected).abs().max()
        if backbone.text_first:  # FLUX: the order places the rotary positions (and splits
            # the single-stream sequence); SD3's two streams come apart without it
            wrong = captured(backbone, layer, swapped, renormalise)
            assert not torch.allclose(wrong, expected, atol=1e-3)
        sums = maps.sum(-1)
        if renormalise:  # SD-style per-token maps
            assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
        else:  # the rest of each query's attention goes to the image tokens
            assert (sums < 1 - 1e-3).all()


def captured(backbone, layer: str, order: JointOrder, renormalise: bool) -> torch.Tensor:
    """The maps `JointCapture` keeps of `layer` on `forward_once`, every text column."""
    store = AttentionStore(HookedLayers(guidance=[layer], mask=layer))

    def make(store, name, inner):
        return JointCapture(store, name, inner, order, renormalise=renormalise)

    with installed(backbone.denoiser, store, make):
        store.set([layer], torch.arange(backbone.text_tokens)[None])
        forward_once(backbone)
        return store.maps[layer]


@pytest.mark.parametrize("renormalise", [True, False])
def test_chunks_give_the_same_maps_and_gradients(renormalise):
    """Queries in chunks of 5 (recomputed in the backward pass) or all at once: same maps, same
    gradients; the columns picked are the ones asked for. Renormalised, the maps are the
    softmax over the text keys alone: the image keys are not needed (and get no gradient)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 23, 8, generator=g, requires_grad=True)
    kt = torch.randn(2, 3, 7, 8, generator=g, requires_grad=True)
    ki = torch.randn(2, 3, 23, 8, generator=g, requires_grad=True)
    cols = torch.tensor([[1, 4], [6, 0]])
    per_query = 2 * 3 * (7 + (0 if renormalise else 23)) * 4
    out = {}
    for chunk in (5 * per_query, 10**9):
        maps = text_maps(q, kt, ki, cols, chunk_bytes=chunk, renormalise=renormalise)
        (maps * torch.arange(maps.numel()).reshape(maps.shape)).sum().backward()
        out[chunk] = (maps.detach(), q.grad.clone(), kt.grad.clone(), ki.grad)
        q.grad = kt.grad = ki.grad = None
    (a, ga, gka, gia), (b, gb, gkb, gib) = out.values()
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(ga, gb, atol=1e-5)
    assert torch.allclose(gka, gkb, atol=1e-5)
    logits = (q @ torch.cat([kt, ki], dim=2).transpose(-1, -2)) * 8**-0.5
    full = logits.softmax(-1)[..., :7]  # the text block of the softmax over every key
    if renormalise:
        full = full / full.sum(-1, keepdim=True)
        assert gia is None and gib is None
        alone = text_maps(q, kt, None, cols)
        assert torch.allclose(alone, a, atol=1e-6)
    else:
        assert torch.allclose(gia, gib, atol=1e-5) and gia.abs().sum() > 0
        with pytest.raises(ValueError, match="image keys"):
            text_maps(q, kt, None, cols, renormalise=False)
    assert torch.allclose(a, full.gather(-1, cols[:, None, None].expand(2, 3, 23, 2)), atol=1e-6)

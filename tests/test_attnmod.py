"""Attention modulation (`--method attnmod`): its math pinned on real attention layers (values
and outputs read straight off a diffusers `Attention` whose value and output projections are
the identity, so its output rows are its attention probabilities), and renders on every
family (SD3 and FLUX's joint attention: `test_joint_attnmod.py`)."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention
from lmd.layouts.model import Box, Layout

from lmd.controller import Controller, LMDConfig
from lmd.controller.attention import AttentionStore
from lmd.controller.captions import overall_tokens
from lmd.controller.engine import Run
from lmd.controller.methods import get_method
from lmd.controller.methods.attnmod import (
    AttnModHooks,
    AttnModSettings,
    FocusedCrossAttention,
    TemperedSelfAttention,
)
from lmd.controller.noise import Cells
from lmd.controller.phase import Phase, PhaseObject, PhaseRow
from lmd.controller.trace import TraceRecorder

LAYOUT = Layout(
    boxes=[Box(name="a gray cat", x=20, y=240, w=200, h=220),
           Box(name="a red ball", x=300, y=60, w=180, h=200)],
    background="a grassy park", negative="",
)  # fmt: skip
T = 77  # the text encoder's tokens


def probing(dim: int, context: int | None = None) -> Attention:
    """A one-head attention layer whose value and output projections are the identity: fed
    one-hot tokens, its output rows are its attention probabilities."""
    torch.manual_seed(0)
    attn = Attention(query_dim=dim, cross_attention_dim=context, heads=1, dim_head=dim)
    with torch.no_grad():
        for linear in (attn.to_v, attn.to_out[0]):
            linear.weight.copy_(torch.eye(dim))
            if linear.bias is not None:
                linear.bias.zero_()
        attn.to_q.weight.mul_(8)  # sharper than random: the probabilities differ visibly
    return attn


def hooks_for(pipe, settings: AttnModSettings, steps: int = 10):
    """AttnMod's hooks for the overall prompt of `LAYOUT` on a 4x4 patch grid (16x16 latent):
    the cat's box covers the left half of the grid, the ball's the top right."""
    run = Run(pipe, LMDConfig(steps=steps), "attnmod", AttentionStore(None), (128, 128), (16, 16))
    prompt = "a grassy park with a gray cat, a red ball"
    cat, ball = overall_tokens(pipe.tokenizer, "a grassy park", ["a gray cat", "a red ball"])
    objects = (
        PhaseObject("a gray cat", "a gray cat", Cells(0, 0, 8, 16), (0, 0, 0.5, 1), cat, 0),
        PhaseObject("a red ball", "a red ball", Cells(8, 0, 8, 8), (0.5, 0, 1, 0.5), ball, 1),
    )
    phase = Phase("image", (PhaseRow(prompt, objects),), (128, 128), (16, 16), steps)
    run.cond_rows = slice(1, None)  # a CFG batch [uncond, cond] of one row each
    return AttnModHooks(run, phase, settings), cat.guided, ball.guided


def cross_probs(hooks, index: int) -> torch.Tensor:
    """The focused cross-attention's probabilities [2 rows, 16 patches, 77 tokens]."""
    attn = probing(T, T)
    hooks.step(index, None)
    patches = torch.randn(2, 16, T, generator=torch.Generator().manual_seed(1))
    tokens = torch.eye(T).expand(2, T, T)
    processor = FocusedCrossAttention(hooks, inner=None)
    with torch.no_grad():
        return processor(attn, patches, tokens)


def test_a_patch_in_one_box_puts_no_attention_on_another_objects_tokens(tiny_pipe):
    hooks, cat, ball = hooks_for(tiny_pipe, AttnModSettings())
    probs = cross_probs(hooks, 0)
    cond, uncond = probs[1].view(4, 4, T), probs[0].view(4, 4, T)
    only_cat = cond[2:, :2]  # bottom left: inside the cat's box alone
    only_ball = cond[:2, 2:]  # top right: the ball's box alone
    outside = cond[2:, 2:]  # bottom right: no box
    assert (only_cat[..., list(ball)] == 0).all() and (only_cat[..., list(cat)] > 0).all()
    assert (only_ball[..., list(cat)] == 0).all() and (only_ball[..., list(ball)] > 0).all()
    assert (outside[..., list(cat) + list(ball)] == 0).all()
    assert torch.allclose(probs.sum(-1), torch.ones(2, 16))  # still a distribution
    assert (uncond[..., list(ball)] > 0).all()  # the unconditional row is left alone
    # Past the masking phase (mask_steps 0.5 of 10 steps: index 5 on) every patch sees all.
    late, _, _ = hooks_for(tiny_pipe, AttnModSettings(mask_steps=0.5))
    assert (cross_probs(late, 4)[1].view(4, 4, T)[2:, :2][..., list(ball)] == 0).all()
    assert (cross_probs(late, 5)[1].view(4, 4, T)[2:, :2][..., list(ball)] > 0).all()


def test_the_weight_curves_run_linearly_between_their_end_points():
    s = AttnModSettings()
    assert s.weights(0, 51) == (1.2, 0.8)
    assert s.weights(25, 51) == pytest.approx((1.0, 1.0))
    assert s.weights(50, 51) == pytest.approx((0.8, 1.2))
    assert s.weights(10, 51) == pytest.approx((1.2 - 0.4 * 10 / 50, 0.8 + 0.4 * 10 / 50))


def test_a_weight_multiplies_its_tokens_attention_before_the_softmax(tiny_pipe):
    """p'(k) = w_k p(k) / sum_j w_j p(j): a shared word's attention over an object token's
    moves by exactly w_global / w_instance against the unweighted layer."""
    flat, cat, _ = hooks_for(tiny_pipe, AttnModSettings.neutral())
    weighted, _, _ = hooks_for(
        tiny_pipe, AttnModSettings(masking=False, global_weight=(2.0, 2.0),
                                   instance_weight=(0.5, 0.5))
    )  # fmt: skip
    shared, token = 2, cat[-1]  # "grassy" and "cat"
    p, q = cross_probs(flat, 3)[1], cross_probs(weighted, 3)[1]
    ratio = (q[:, shared] / q[:, token]) / (p[:, shared] / p[:, token])
    assert torch.allclose(ratio, torch.full_like(ratio, 4.0), rtol=1e-4)
    start, end = 0, 76  # the start token and the padding keep weight 1
    assert torch.allclose(q[:, start] / q[:, end], p[:, start] / p[:, end], rtol=1e-4)


def test_the_temperature_sharpens_self_attention_in_the_early_phase(tiny_pipe):
    attn = probing(16)
    patches = torch.eye(16)[None]  # 16 one-hot patches: the output rows are the probabilities
    hooks, _, _ = hooks_for(tiny_pipe, AttnModSettings(temperature=0.5, temperature_steps=0.3))
    processor = TemperedSelfAttention(hooks, inner=None)

    def probs(index):
        hooks.step(index, None)
        with torch.no_grad():
            return processor(attn, patches)[0]

    early, late = probs(2), probs(3)  # 0.3 of 10 steps: indices 0, 1, 2
    with torch.no_grad():
        q, k = attn.to_q(patches[0]), attn.to_k(patches[0])
    expected = lambda tau: (q @ k.T * attn.scale / tau).softmax(-1)  # noqa: E731
    assert torch.allclose(late, expected(1.0), atol=1e-6)
    assert torch.allclose(early, expected(0.5), atol=1e-6)

    def entropy(p):
        return -(p * p.clamp_min(1e-12).log()).sum(-1)

    assert (entropy(early) < entropy(late)).all()


@pytest.mark.parametrize("pipe", ["tiny_pipe", "sdxl_tiny_pipe", "sd3_tiny_pipe", "flux_tiny_pipe"])
def test_with_every_mechanism_off_it_is_plain_sd(pipe, request):
    """tau 1, no masking, flat weights: lmd's processors compute the denoiser's own attention
    (on SD3 and FLUX: `joint_attend` on every joint layer)."""
    pipe = request.getfixturevalue(pipe)
    c = Controller(pipe, LMDConfig(steps=3))
    traces = [TraceRecorder(), TraceRecorder()]
    neutral = get_method("attnmod").with_settings(**vars(AttnModSettings.neutral()))
    c.render(LAYOUT, seed=4, method=neutral, trace=traces[0])
    c.render(LAYOUT, seed=4, method="sd", trace=traces[1])
    a, b = (t.last("final_latents") for t in traces)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "pipe", ["tiny_pipe", "sd2_tiny_pipe", "sdxl_tiny_pipe", "sd3_tiny_pipe", "flux_tiny_pipe"]
)
def test_attnmod_renders_deterministically_and_unlike_plain_sd(pipe, request):
    pipe = request.getfixturevalue(pipe)
    c = Controller(pipe, LMDConfig(steps=3))
    first = c.render(LAYOUT, seed=2, method="attnmod")
    assert c.render(LAYOUT, seed=2, method="attnmod").image.tobytes() == first.image.tobytes()
    assert c.render(LAYOUT, seed=3, method="attnmod").image.tobytes() != first.image.tobytes()
    assert c.render(LAYOUT, seed=2, method="sd").image.tobytes() != first.image.tobytes()
    assert first.counts.forwards == 3 and first.counts.backwards == 0  # one pass, no guidance
    assert first.generated == 0


def test_lmd_render_takes_method_attnmod(tmp_path):
    import json

    from lmd.cli import run

    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(LAYOUT.model_dump()))
    out = tmp_path / "out"
    argv = ["render", str(layout), "-o", str(out), "--model", "random:tiny", "--steps", "2"]
    assert run([*argv, "--method", "attnmod", "--device", "cpu"]) == 0
    assert (out / "image.png").is_file()

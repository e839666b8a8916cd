"""Shared attention in real renders on tiny random SD 1.x and SDXL models: off, it changes
nothing; on, an image's queries reach its anchor's subject patches and nothing else of the
anchor, the dropout drops its fraction by seed, the queries blend with the vanilla pass by
the schedule, and feature injection writes only inside the subject where the anchor is close.

A `Probe` stands in as the layer's own processor (a real one: diffusers' explicit attention,
computed here so its probabilities can be read) under the shared attention's wrapper.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmd.layouts.model import Box, Layout

from lmd.controller import ConsistencySettings, Controller, LMDConfig
from lmd.controller.backbones import family_of
from lmd.controller.trace import TraceRecorder

SIZE = 64
CAT = "a grey cat"


def scene(background: str, x: int, with_ball: bool = True) -> Layout:
    boxes = [Box(name=CAT, x=x, y=200, w=220, h=260)]
    if with_ball:
        boxes.append(Box(name=f"a ball on {background}", x=380, y=30, w=100, h=100))
    return Layout(boxes=boxes, background=background, negative="")


STORY = [scene("a beach", 20), scene("snow", 260)]
ONLY = ConsistencySettings(anchors=1, dropout=0.0, query_blend=0.0, inject=False,
                           mask_source="layout")  # fmt: skip


class Probe:
    """Diffusers' explicit attention (`AttnProcessor`'s arithmetic), keeping every call."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):  # fmt: skip
        keys_in = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        rows, pixels, _ = hidden_states.shape
        q = attn.to_q(hidden_states)  # through whatever the layer's wrapper hooks on to_q
        raw = F.linear(hidden_states, attn.to_q.weight, attn.to_q.bias)
        k, v = attn.to_k(keys_in), attn.to_v(keys_in)
        mask = attn.prepare_attention_mask(attention_mask, keys_in.shape[1], rows)
        qh, kh, vh = (attn.head_to_batch_dim(x) for x in (q, k, v))
        probs = attn.get_attention_scores(qh, kh, mask)
        out = attn.to_out[1](attn.to_out[0](attn.batch_to_head_dim(torch.bmm(probs, vh))))
        self.calls.append({
            "shared": encoder_hidden_states is not None, "hidden": hidden_states.detach(),
            "mask": attention_mask, "q": q.detach(), "raw_q": raw.detach(),
            "probs": probs.reshape(rows, attn.heads, pixels, -1).mean(1).detach(),
            "out": out.detach(),
        })  # fmt: skip
        return out


@pytest.fixture(params=["tiny_pipe", "sdxl_tiny_pipe"])
def pipe(request):
    return request.getfixturevalue(request.param)


def controller(pipe, steps: int = 3) -> Controller:
    return Controller(pipe, LMDConfig(steps=steps))


def probed(pipe, story, **options):
    """Render `story` with a `Probe` as the last decoder self-attention layer's processor;
    -> (the story, the probe, the layer's final outputs per call)."""
    name = list(family_of(pipe).decoder_attention("self"))[-1]
    layer = pipe.unet.get_submodule(name)
    probe, finals = Probe(), []
    before = layer.processor
    layer.set_processor(probe)
    handle = layer.register_forward_hook(lambda m, i, o: finals.append(o.detach()))
    try:
        result = controller(pipe, options.pop("steps", 3)).render_story(
            story, seeds=options.pop("seeds", [3, 4]), height=SIZE, width=SIZE, **options
        )
    finally:
        handle.remove()
        layer.set_processor(before)
    return result, probe, finals


@pytest.mark.parametrize(
    "which, method",
    [("tiny_pipe", "sd"), ("sdxl_tiny_pipe", "sd"),
     pytest.param("tiny_pipe", "lmd", marks=pytest.mark.slow),
     pytest.param("sdxl_tiny_pipe", "lmd", marks=pytest.mark.slow)],
)  # fmt: skip
def test_with_sharing_off_each_image_is_what_the_method_draws_alone(request, which, method):
    c = controller(request.getfixturevalue(which))
    alone = []
    for k, layout in enumerate(STORY):
        trace = TraceRecorder()
        c.render(layout, seed=3 + k, method=method, height=SIZE, width=SIZE, trace=trace)
        alone.append(trace.last("final_latents"))
    trace = TraceRecorder()
    off = c.render_story(STORY, seeds=[3, 4], method=method, height=SIZE, width=SIZE,
                         trace=trace)  # fmt: skip
    assert off.consistency is None
    for k, latents in enumerate(alone):
        together = trace.last(f"image{k}.final_latents")
        torch.testing.assert_close(together, latents, rtol=1e-4, atol=1e-4)
    unshared = c.render_story(STORY, seeds=[3, 4], method=method, height=SIZE, width=SIZE,
                              consistency=ConsistencySettings(share=False))  # fmt: skip
    for a, b in zip(off.images, unshared.images, strict=True):
        assert a.tobytes() == b.tobytes()


def test_one_image_through_the_story_path_is_the_render_exactly(tiny_pipe):
    c = controller(tiny_pipe)
    single = c.render(STORY[0], seed=3, height=SIZE, width=SIZE, method="sd")
    story = c.render_story(STORY[:1], seeds=[3], height=SIZE, width=SIZE, method="sd",
                           consistency=ConsistencySettings())  # fmt: skip
    assert story.results[0].image.tobytes() == single.image.tobytes()


def test_an_image_attends_to_its_anchors_subject_and_nothing_else_of_it(pipe):
    story, probe, _ = probed(pipe, STORY, consistency=ONLY, method="sd")
    hooks = story.consistency.last
    shared = [c for c in probe.calls if c["shared"]]
    assert len(shared) == len(probe.calls) == 3  # one shared call per step, nothing else
    assert hooks.sources == [[], [0]]  # image 1 attends to anchor 0, the anchor to itself
    for call in shared:
        rows, pixels = call["hidden"].shape[:2]
        masks = hooks.masks_at(pixels)
        anchor, own = masks[0], masks[1]
        assert 0 < int(anchor.sum()) < pixels and own.any()
        uncond, cond = hooks.halves(rows)
        for row in (uncond[1], cond[1]):  # both halves of image 1
            on_anchor = call["probs"][row][:, pixels:]
            assert (on_anchor[own][:, anchor] > 0).all()
            assert (on_anchor[:, ~anchor] == 0).all()
            assert float(on_anchor[own].sum(-1).min()) > 1e-3
        for row in (uncond[0], cond[0]):  # the anchor sees only its own patches
            assert (call["probs"][row][:, pixels:] == 0).all()
    # The layer's output follows: image 1 differs from the vanilla render, image 0 does not.
    _, plain, _ = probed(pipe, STORY, consistency=None, method="sd")
    first_vanilla = plain.calls[0]["out"]
    rows = first_vanilla.shape[0]
    uncond, cond = hooks.halves(rows)
    torch.testing.assert_close(shared[0]["out"][cond[0]], first_vanilla[cond[0]])
    assert not torch.allclose(shared[0]["out"][cond[1]], first_vanilla[cond[1]], atol=1e-5)


def test_dropout_drops_its_fraction_of_the_anchor_subject_the_same_for_a_seed(tiny_pipe):
    settings = ConsistencySettings(anchors=1, dropout=0.5, query_blend=0.0, inject=False,
                                   mask_source="layout")  # fmt: skip

    def dropped_sets(seeds):
        story, probe, _ = probed(tiny_pipe, STORY, consistency=settings, method="sd",
                                 seeds=seeds)  # fmt: skip
        hooks, out = story.consistency.last, []
        for call in (c for c in probe.calls if c["shared"]):
            rows, pixels = call["hidden"].shape[:2]
            anchor = hooks.masks_at(pixels)[0].cpu()
            uncond, cond = hooks.halves(rows)
            off = [call["mask"][r, 0, pixels:].isinf().cpu() & anchor for r in (uncond[1], cond[1])]
            assert torch.equal(off[0], off[1])  # the same draw in both halves
            assert int(off[0].sum()) == round(0.5 * int(anchor.sum()))
            out.append(off[0])
        return out

    first = dropped_sets([3, 4])
    assert len(first) == 3 and not torch.equal(first[0], first[1])  # drawn anew each step
    assert all(torch.equal(a, b) for a, b in zip(first, dropped_sets([3, 4]), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, dropped_sets([5, 6]), strict=True))


def test_queries_blend_with_the_vanilla_pass_by_the_schedule(pipe):
    settings = ConsistencySettings(anchors=1, dropout=0.0, inject=False, mask_source="layout")
    story, probe, _ = probed(pipe, STORY, consistency=settings, method="sd", steps=5)
    passes = story.consistency.last.passes
    # s > 0 at step 0 of 5 only (s falls from 0.9 to 0 over the first step): a vanilla pass
    assert passes == ["vanilla", "shared", "shared", "shared", "shared", "shared"]
    assert len(probe.calls) == len(passes)
    vanilla, shared = probe.calls[0], probe.calls[1]
    assert not vanilla["shared"] and shared["shared"]
    s = settings.blend_weight(0, 5)
    assert s == 0.9
    expected = s * vanilla["q"] + (1 - s) * shared["raw_q"]
    torch.testing.assert_close(shared["q"], expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(shared["q"], shared["raw_q"], atol=1e-4)
    late = probe.calls[2]  # step 1: no blending
    torch.testing.assert_close(late["q"], late["raw_q"])


def test_feature_injection_writes_inside_the_subject_where_the_anchor_is_close(tiny_pipe):
    def injected(distance):
        settings = ConsistencySettings(
            anchors=1,
            dropout=0.0,
            query_blend=0.0,
            injection_max_distance=distance,
            mask_source="layout",
        )
        story, probe, finals = probed(tiny_pipe, STORY, consistency=settings, method="sd",
                                      steps=4)  # fmt: skip
        hooks = story.consistency.last
        assert hooks.passes == ["shared", "vanilla", "shared", "shared", "shared"]  # step 1
        vanilla, call, final = probe.calls[1], probe.calls[2], finals[2]
        return hooks, vanilla, call, final

    hooks, vanilla, call, final = injected(2.0)
    rows, pixels = call["hidden"].shape[:2]
    masks = hooks.masks_at(pixels)
    uncond, cond = hooks.halves(rows)
    features = F.normalize(vanilla["hidden"], dim=-1)
    distance = {}
    for row, anchor_row in ((uncond[1], uncond[0]), (cond[1], cond[0])):
        sim = features[row][masks[1]] @ features[anchor_row][masks[0]].T
        best, nearest = sim.max(-1)
        distance[row] = (1 - best, nearest)
    threshold = float(torch.cat([d for d, _ in distance.values()]).median())
    hooks, vanilla, call, final = injected(threshold)
    changed = (final - call["out"]).abs().amax(-1) > 0
    assert not changed[uncond[0]].any() and not changed[cond[0]].any()  # anchors untouched
    for row, anchor_row in ((uncond[1], uncond[0]), (cond[1], cond[0])):
        d, nearest = distance[row]
        where = masks[1].nonzero().squeeze(-1)
        expected = torch.zeros(pixels, dtype=torch.bool)
        expected[where[d < threshold]] = True
        assert 0 < int(expected.sum()) < int(masks[1].sum())
        assert torch.equal(changed[row].cpu(), expected)  # inside the mask, under the threshold
        source = call["out"][anchor_row][masks[0]][nearest[d < threshold]]
        mixed = 0.2 * call["out"][row][expected] + 0.8 * source
        torch.testing.assert_close(final[row][expected], mixed, rtol=1e-5, atol=1e-5)


def test_attention_masks_come_from_the_subject_tokens_thresholded(tiny_pipe):
    settings = ConsistencySettings(anchors=1, mask_source="attention")
    story = controller(tiny_pipe).render_story(
        STORY, seeds=[3, 4], height=SIZE, width=SIZE, method="sd", consistency=settings
    )
    hooks = story.consistency.last
    assert hooks.mask_source == "attention" and len(hooks.maps) == 2  # steps 0 and 1 kept
    masks = hooks.attention_masks()
    assert masks.shape[0] == 2 and masks.any() and not masks.all()
    mean = torch.stack([*hooks.maps, hooks.current]).mean(0)
    for k in range(2):
        flat = mean[k]
        inside, outside = flat[masks[k].flatten()], flat[~masks[k].flatten()]
        assert float(inside.min()) > float(outside.max())  # a threshold split


def test_a_story_keeps_what_the_method_does_lmd_composes_each_image(tiny_pipe):
    trace = TraceRecorder()
    story = controller(tiny_pipe, steps=2).render_story(
        STORY, seeds=[3, 4], height=SIZE, width=SIZE, method="lmd",
        consistency=ConsistencySettings(), trace=trace,
    )  # fmt: skip
    assert story.subjects == [(0,), (0,)] and story.anchors == [0, 1]
    assert [r.generated for r in story.results] == [2, 2]
    assert {"image0.composed", "image1.composed", "image1.box0.placed_mask"} <= set(trace.names())
    hooks = story.consistency.last
    assert hooks.phase.name == "overall" and hooks.mask_source == "layout"
    placed = story.results[1].masks[0]
    assert torch.equal(hooks.latent_masks[1], placed)  # LMD's mask of the cat, in place
    a, b = (np.asarray(im, dtype=float) for im in story.images)
    assert np.abs(a - b).max() > 0

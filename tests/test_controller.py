"""The controller end to end on tiny random models (CPU, a few steps)."""

import warnings

import pytest
import torch
from lmd.layouts.model import Box, Layout

from lmd.controller import BoxCache, Controller, LMDConfig
from lmd.controller.attention import AttentionStore, installed
from lmd.controller.engine import Run
from lmd.controller.flows import Drawing
from lmd.controller.flows.boxes import box_jobs
from lmd.controller.noise import gaussian
from lmd.controller.per_box import BoxPhase, generate_boxes

STEPS = 5
# Threshold 0 forces every guidance iteration, the worst case, so the tests exercise it.
FORCED = {"steps": STEPS, "loss_threshold": 0.0}


def layout(*boxes, background="a grassy park"):
    return Layout(boxes=[Box(name=n, x=x, y=y, w=w, h=h) for n, x, y, w, h in boxes],
                  background=background, negative="dark")  # fmt: skip


CAT_DOG = layout(("a gray cat", 40, 220, 160, 200), ("a dog", 300, 150, 180, 260))


def controller(pipe, **config):
    return Controller(pipe, LMDConfig(**{"steps": STEPS, **config}), model_id="random:tiny")


def test_batched_per_box_equals_box_by_box(tiny_pipe):
    c = controller(tiny_pipe, **FORCED)
    three = layout(("a gray cat", 40, 220, 160, 200), ("a dog", 300, 150, 180, 260),
                   ("a red ball", 200, 400, 80, 80))  # fmt: skip
    results = {}
    scaled, noise = three.scaled(128, 128), gaussian(0, (4, 16, 16))
    for batch in (3, 1):
        store = AttentionStore(c.layers)
        run = Run(tiny_pipe, c.config, "lmd", store, (128, 128), (16, 16), box_batch_size=batch)
        phase = BoxPhase.of(c.config, run.method, scaled.negative)
        jobs = box_jobs(Drawing(run, scaled, 0, [1, 2, 3], noise, "random:tiny"), phase)
        with torch.no_grad(), installed(tiny_pipe.unet, store):
            results[batch] = generate_boxes(run, jobs, phase, noise, "a grassy park")
        results[f"counts{batch}"] = run.counts
    for a, b in zip(results[3], results[1], strict=True):
        assert torch.allclose(a.frames, b.frames, atol=1e-4)
        for layer in a.attention:
            assert torch.allclose(a.attention[layer], b.attention[layer], atol=1e-5)
        assert torch.equal(a.mask, b.mask)
    batched, single = results["counts3"], results["counts1"]
    assert batched.box_by_box_forwards == single.forwards  # the same work, fewer calls
    assert batched.forwards * 3 == single.forwards and batched.backwards * 3 == single.backwards


def test_lmd_renders_deterministically_and_counts_its_work(tiny_pipe):
    c = controller(tiny_pipe, **FORCED)
    phases = []
    first = c.render(CAT_DOG, seed=3, callback=lambda p, s, n: phases.append((p, s, n)))
    second = c.render(CAT_DOG, seed=3)
    assert first.image.tobytes() == second.image.tobytes()
    assert first.image.size == (128, 128) and first.layout.width == 128
    assert (first.generated, first.reused) == (2, 0)
    assert len(first.box_images) == 2 and len(first.masks) == 2
    assert all(m.shape == (16, 16) and m.dtype == torch.bool for m in first.masks)
    assert ("boxes", STEPS, STEPS) in phases and ("overall", STEPS, STEPS) in phases
    guided = c.config.guidance_until
    iters = sum(c.config.iterations(i) for i in range(guided))
    # Per box: STEPS CFG calls + (iters + 0) guidance calls; the same overall.
    assert first.counts.forwards == 2 * (STEPS + iters)
    assert first.counts.backwards == 2 * iters
    assert first.counts.guidance_forwards == 2 * iters
    assert c.render(CAT_DOG, seed=4).image.tobytes() != first.image.tobytes()


def test_sd_method_and_layouts_without_boxes(tiny_pipe):
    c = controller(tiny_pipe)
    sd = c.render(CAT_DOG, method="sd")
    assert (sd.counts.forwards, sd.counts.backwards, sd.generated) == (STEPS, 0, 0)
    empty = layout()
    lmd = c.render(empty, method="lmd")  # nothing to ground: plain SD from the background
    assert lmd.image.tobytes() == c.render(empty, method="sd").image.tobytes()
    assert lmd.box_images == [] and lmd.counts.forwards == STEPS


def test_bad_inputs_fail_fast_naming_the_argument(tiny_pipe):
    c = controller(tiny_pipe)
    with pytest.raises(ValueError, match="`height` and `width`.*100 and 128"):
        c.render(CAT_DOG, height=100, width=128)
    with pytest.raises(ValueError, match="`method`.*'dalle'"):
        c.render(CAT_DOG, method="dalle")
    with pytest.raises(ValueError, match="GLIGEN"):
        c.render(CAT_DOG, method="lmd+")
    with pytest.raises(ValueError, match="`object_seeds`"):
        c.render(CAT_DOG, object_seeds=[1])
    with pytest.raises(ValueError, match="`seed`"):
        c.render(CAT_DOG, seed=-1)


def test_box_off_canvas_and_other_sizes(tiny_pipe):
    c = controller(tiny_pipe, steps=3)
    off = layout(("a cat", -100, 400, 300, 300))  # mostly off the canvas
    result = c.render(off, height=64, width=192)
    assert result.image.size == (192, 64) and result.masks[0].shape == (8, 24)


def test_forty_boxes_render_in_batches(tiny_pipe):
    c = Controller(tiny_pipe, LMDConfig(steps=2), model_id="random:tiny", box_batch_size=16)
    boxes = [(f"a {w}", (i % 8) * 64, (i // 8) * 100, 60, 90) for i, w in
             enumerate(["cat", "dog", "ball", "tree", "car"] * 8)]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = c.render(layout(*boxes))
    assert result.generated == 40 and len(result.masks) == 40
    # 5 distinct names fit the overall prompt; nothing is cut off here.
    assert not [w for w in caught if "overall prompt" in str(w.message)]
    assert result.counts.box_by_box_forwards >= 40 * 2


def test_object_seeds_follow_the_object_not_its_position(tiny_pipe):
    c = controller(tiny_pipe, steps=2)
    a = c.render(CAT_DOG, seed=1).object_seeds
    swapped = Layout(boxes=list(reversed(CAT_DOG.boxes)), background=CAT_DOG.background)
    b = c.render(swapped, seed=1).object_seeds
    assert a == list(reversed(b)) and a[0] != a[1]
    assert c.render(CAT_DOG, seed=1, object_seeds=[7, None]).object_seeds == [7, a[1]]


def test_cache_reuses_a_moved_object_exactly(tiny_pipe):
    c = controller(tiny_pipe, **FORCED)
    cache = BoxCache()
    first = c.render(CAT_DOG, seed=5, cache=cache)
    assert (first.generated, first.reused, len(cache)) == (2, 0, 2)
    moved = layout(("a gray cat", 200, 220, 160, 200), ("a dog", 300, 150, 180, 260))
    again = c.render(moved, seed=5, cache=cache)
    assert (again.generated, again.reused) == (0, 2)
    fresh = c.render(moved, seed=5)
    assert again.image.tobytes() == fresh.image.tobytes()  # LMD draws centred: exact reuse
    assert again.counts.forwards < fresh.counts.forwards
    resized = layout(("a gray cat", 200, 220, 100, 120), ("a dog", 300, 150, 180, 260))
    third = c.render(resized, seed=5, cache=cache)
    assert (third.generated, third.reused) == (1, 1)


def test_lmd_plus_on_the_tiny_gligen_unet(tiny_gligen_pipe, tiny_sam):
    from diffusers.models.attention import GatedSelfAttentionDense

    fusers = [m for m in tiny_gligen_pipe.unet.modules() if isinstance(m, GatedSelfAttentionDense)]
    with torch.no_grad():
        for m in fusers:  # random GLIGEN layers start closed (tanh(0) = 0); open them
            m.alpha_attn.fill_(1.0)
            m.alpha_dense.fill_(1.0)
    c = Controller(tiny_gligen_pipe, LMDConfig(**FORCED), segmenter=tiny_sam)
    cache = BoxCache()
    plus = c.render(CAT_DOG, method="lmd+", cache=cache)
    assert plus.generated == 2 and plus.counts.backwards > 0  # overall guidance only
    guided = c.config.guidance_until
    iters = sum(c.config.iterations(i) for i in range(guided))
    assert plus.counts.backwards == iters  # no per-box guidance for LMD+
    assert all(m.enabled for m in fusers)  # scheduled sampling restored afterwards
    assert plus.image.tobytes() != c.render(CAT_DOG, method="lmd").image.tobytes()
    moved = layout(("a gray cat", 60, 220, 160, 200), ("a dog", 300, 150, 180, 260))
    again = c.render(moved, method="lmd+", cache=cache)
    assert (again.generated, again.reused) == (0, 2)


def test_no_guided_steps_and_a_refiner(tiny_pipe):
    seen, refined = [], []

    def refine(image, prompt=""):
        seen.append((image.tobytes(), prompt))
        refined.append(image.transpose(0))  # a visible change: mirrored
        return refined[-1]

    c = Controller(tiny_pipe, LMDConfig(steps=3, guidance_steps=0), refine=refine)
    result = c.render(CAT_DOG)
    assert result.counts.backwards == 0 and result.counts.guidance_forwards == 0
    assert [p for _, p in seen] == ["a grassy park with a dog, a gray cat"]  # names sorted
    assert result.image is refined[0]  # the refiner's output is what is returned
    unrefined = Controller(tiny_pipe, LMDConfig(steps=3, guidance_steps=0)).render(CAT_DOG)
    assert seen[0][0] == unrefined.image.tobytes()  # it refined the decoded picture
    assert result.image.tobytes() != unrefined.image.tobytes()


def _other(settings, name: str):
    """Some other valid value of field `name` of a settings dataclass."""
    import typing

    value = getattr(settings, name)
    choices = typing.get_args(typing.get_type_hints(type(settings))[name])
    if choices and all(isinstance(c, str) for c in choices):  # a Literal
        return next(c for c in choices if c != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, tuple):
        return (1,) * len(value)
    if isinstance(value, str):
        return value + ", extra words"
    if isinstance(value, float) and value <= 1:
        return value / 2  # ratios stay in range
    return value + 1


def _drawn(pipe, config, method, cache=None):
    """The per-box phase alone (LMD's flow up to its objects): (results, drawn, reused)."""
    from lmd.controller.flows.boxes import boxes
    from lmd.controller.noise import object_seeds

    c = Controller(pipe, config, model_id="tiny")
    scaled = CAT_DOG.scaled(*reversed(c.native_size))
    run = Run(pipe, config, method, AttentionStore(c.layers), c.native_size, (16, 16))
    noise = gaussian(5, (4, 16, 16))
    drawing = Drawing(run, scaled, 5, object_seeds(5, scaled.names, None), noise, "tiny", cache)
    with torch.no_grad(), installed(pipe.unet, run.store):
        return boxes(drawing)


@pytest.mark.parametrize("method", ["lmd", "lmd+"])
def test_the_per_box_cache_keys_on_exactly_what_the_per_box_phase_reads(
    method, tiny_pipe, tiny_gligen_pipe
):
    """Every setting, the config's and the method's, changed alone: where the per-box phase's
    settings (`BoxPhase`, the cache key) stay equal, the objects drawn afresh are the same
    (the setting is truly not read); where they change, cached objects are not reused."""
    import dataclasses

    from lmd.controller.methods import get_method

    pipe = tiny_gligen_pipe if method == "lmd+" else tiny_pipe
    base_cfg, base = LMDConfig(steps=2, loss_threshold=0.0), get_method(method)
    cache = BoxCache()
    reference, _, _ = _drawn(pipe, base_cfg, base, cache)
    key = BoxPhase.of(base_cfg, base, CAT_DOG.negative)
    variants = [
        (f.name, base_cfg.replace(**{f.name: _other(base_cfg, f.name)}), base)
        for f in dataclasses.fields(LMDConfig) if f.name != "paper_methods"
    ] + [
        (f.name, base_cfg, base.with_settings(**{f.name: _other(base.settings, f.name)}))
        for f in dataclasses.fields(base.settings)
    ]  # fmt: skip
    ignored = []
    for name, cfg, m in variants:
        if BoxPhase.of(cfg, m, CAT_DOG.negative) == key:
            ignored.append(name)
            fresh, _, _ = _drawn(pipe, cfg, m)
            for x, y in zip(reference, fresh, strict=True):
                assert torch.equal(x.frames, y.frames), f"{name} changes the objects"
                assert torch.equal(x.mask, y.mask), f"{name} changes the masks"
                assert all(torch.equal(x.attention[k], y.attention[k]) for k in x.attention)
        else:
            _, drawn, reused = _drawn(pipe, cfg, m, cache)
            assert (drawn, reused) == (2, 0), name
    # The overall phase's own settings are among the ignored ones, the per-box ones are not.
    assert {"frozen_ratio", "transfer_weight", "shift_grid", "frame0_paste"} <= set(ignored)
    assert not {"steps", "gaussian_sigma", "blend_ratio", "quality_negative"} & set(ignored)

"""Shifting and composing per-box latents; frozen steps of the overall generation."""

import torch

from lmd.controller.attention import AttentionStore
from lmd.controller.backbones.unet import find_hooked_layers
from lmd.controller.compose import bounding_box_mask, compose, shift
from lmd.controller.config import LMDConfig
from lmd.controller.engine import Run
from lmd.controller.masks import centre_of_mass, gaussian_blur, or_box, select_mask, shift_unit
from lmd.controller.overall import generate_overall


def rect(x0, y0, x1, y1, hw=(8, 8)):
    m = torch.zeros(hw, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def test_shift_moves_whole_cells_and_fills_zeros():
    x = torch.arange(16.0).reshape(4, 4)
    out = shift(x, 1, -1)
    assert out[0, 1] == x[1, 0] and out[2, 3] == x[3, 2]
    assert (out[:, 0] == 0).all() and (out[3] == 0).all()
    assert (shift(x, 4, 0) == 0).all()


def test_compose_pastes_each_object_inside_its_mask_smaller_on_top():
    steps, bg = 3, torch.full((4, 8, 8), -1.0)
    frames = [torch.full((steps, 4, 8, 8), float(i + 1)) for i in range(2)]
    big, small = rect(0, 0, 6, 6), rect(4, 4, 8, 8)  # overlapping in [4:6, 4:6]
    valid = [torch.ones(8, 8, dtype=torch.bool)] * 2
    out = compose(bg, frames, [small, big], valid)  # list order must not matter
    for s in range(1, steps):
        assert (out.frames[s][:, small] == 1).all()  # the smaller object ends on top
        assert (out.frames[s][:, big & ~small] == 2).all()
    # Frame 0: background noise outside the objects' (grown) boxes.
    grown = bounding_box_mask(big) | bounding_box_mask(small)
    assert (out.frames[0][:, ~grown] == -1).all()
    assert torch.equal(out.union, big | small)


def test_frame_zero_never_pastes_cells_a_shift_left_empty():
    bg = torch.full((1, 8, 8), 5.0)
    frames = [torch.zeros(2, 1, 8, 8)]
    mask = rect(0, 0, 2, 2)
    valid = rect(0, 0, 1, 8)  # only the first column holds shifted latents
    out = compose(bg, frames, [mask], [valid])
    assert (out.frames[0][0, :, 1:][~mask[:, 1:]] == 5.0).all()


def test_masks_helpers():
    empty, box = torch.zeros(4, 4, dtype=torch.bool), rect(1, 1, 3, 3, (4, 4))
    assert torch.equal(or_box(empty, box), box)
    assert centre_of_mass(rect(2, 0, 4, 2, (4, 4))) == (2.5, 0.5)
    masks = torch.stack([rect(0, 0, 1, 1), rect(0, 0, 4, 4), rect(0, 0, 8, 8)])
    scores = torch.tensor([0.99, 0.95, 0.5])  # the largest has low confidence
    assert select_mask(masks, scores, torch.ones(3), 0.85, 0.25) == 1
    assert select_mask(masks, scores, torch.tensor([1.0, 0.1, 1.0]), 0.85, 0.25) == 0
    assert shift_unit(64, 8, 8) == 8 and shift_unit(16, 4, 8) == 4 and shift_unit(96, 12, 8) == 16


def test_gaussian_blur_matches_scipy():
    scipy_ndimage = __import__("pytest").importorskip("scipy.ndimage")
    x = torch.rand(2, 6, 9, dtype=torch.float64)
    ours = gaussian_blur(x, 1.5)
    for i in range(2):
        ref = torch.from_numpy(scipy_ndimage.gaussian_filter(x[i].numpy(), 1.5))
        assert torch.allclose(ours[i], ref, atol=1e-10)


def test_frozen_steps_keep_the_composed_latents_inside_the_masks(tiny_pipe):
    cfg = LMDConfig(steps=4, frozen_ratio=1.0, overall_guidance=False)
    run = Run(tiny_pipe, cfg, "lmd", AttentionStore(find_hooked_layers(tiny_pipe.unet)),
              (128, 128), (16, 16))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    frames = [torch.randn(cfg.steps + 1, 4, 16, 16, generator=g)]
    mask = rect(3, 3, 10, 12, (16, 16))
    composed = compose(torch.randn(4, 16, 16, generator=g), frames, [mask], [mask | True])
    out = generate_overall(
        run, composed.frames[0][None], "a park with a cat", "", composed=composed
    )
    assert torch.equal(out[0][:, mask], composed.frames[-1][:, mask])
    assert not torch.equal(out[0][:, ~mask], composed.frames[-1][:, ~mask])
    # With half the steps frozen the final latents are free again.
    run.config = cfg.replace(frozen_ratio=0.5)
    out = generate_overall(
        run, composed.frames[0][None], "a park with a cat", "", composed=composed
    )
    assert not torch.equal(out[0][:, mask], composed.frames[-1][:, mask])

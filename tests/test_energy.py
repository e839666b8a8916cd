"""The LMD energy and its pieces on hand-made attention maps."""

import math

import pytest
import torch

from lmd.controller.config import LMDConfig
from lmd.controller.energy import (
    box_energy,
    guidance_update,
    noise_level,
    topk_mean,
    total_energy,
    transfer_loss,
)
from lmd.controller.methods import get_method

H = W = 8
P = H * W


def box_mask(x0=2, y0=2, x1=6, y1=6) -> torch.Tensor:
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m.flatten()


def energy(attn, mask, fg=1.0, bg=4.0, ratio=0.2, tokens=None):
    """Energy of one object on a [heads, P, T] map."""
    attn = attn[None]
    t = attn.shape[-1]
    tokens = tokens or list(range(t))
    cols = torch.tensor([[tokens]])
    weights = torch.full((1, 1, len(tokens)), 1 / len(tokens))
    return box_energy(
        attn, mask[None, None], cols, weights, fg_weight=fg, bg_weight=bg, topk_ratio=ratio
    )[0, 0]


def spread(mask: torch.Tensor, heads=1) -> torch.Tensor:
    """Attention spread evenly over `mask`: [heads, P, 1]."""
    a = mask.float() / mask.sum()
    return a[None, :, None].expand(heads, P, 1).clone()


def test_topk_mean_takes_k_largest_per_row():
    x = torch.tensor([[1.0, 5.0, 3.0, 2.0], [4.0, 0.0, 8.0, 6.0]])
    out = topk_mean(x, torch.tensor([2, 3]))
    assert out.tolist() == pytest.approx([(5 + 3) / 2, (8 + 6 + 4) / 3])
    assert topk_mean(x, torch.tensor([0, 0])).tolist() == [5.0, 8.0]  # k is at least 1


def test_all_mass_inside_the_box_gives_zero_background_and_small_foreground():
    mask = box_mask()
    # Peak attention of 1 on every top-k pixel inside the box: the foreground term is 0.
    a = mask.float()[None, :, None]
    assert energy(a, mask, fg=1.0, bg=0.0) == pytest.approx(0.0)
    assert energy(a, mask, fg=0.0, bg=4.0) == pytest.approx(0.0)


def test_all_mass_outside_is_maximal():
    mask = box_mask()
    outside = (~mask).float()[None, :, None]
    k_bg = int((~mask).sum() * 0.2)
    # Foreground: nothing inside -> 1 per head. Background: every top-k value is 1 -> 1.
    assert energy(outside, mask, fg=1.0, bg=4.0) == pytest.approx(1.0 + 4.0)
    one_pixel = torch.zeros(1, P, 1)
    one_pixel[0, 0, 0] = 1.0  # pixel (0, 0) is outside
    assert energy(one_pixel, mask, fg=1.0, bg=4.0) == pytest.approx(1.0 + 4.0 / k_bg)


def test_top_k_ratio_sets_how_many_pixels_count():
    mask = box_mask()  # 16 pixels inside
    a = torch.zeros(1, P, 1)
    inside = torch.nonzero(mask).flatten()
    a[0, inside[:2], 0] = 1.0  # two pixels at 1, the rest of the box at 0
    for ratio in (0.125, 0.25, 0.5):
        k = int(16 * ratio)
        expected = 1 - min(2, k) / k
        assert energy(a, mask, fg=1.0, bg=0.0, ratio=ratio) == pytest.approx(expected)


def test_weights_scale_their_terms():
    mask = box_mask()
    a = spread(~mask)
    base_fg = energy(a, mask, fg=1.0, bg=0.0)
    base_bg = energy(a, mask, fg=0.0, bg=1.0)
    assert energy(a, mask, fg=3.0, bg=0.0) == pytest.approx(3 * base_fg)
    assert energy(a, mask, fg=1.0, bg=4.0) == pytest.approx(base_fg + 4 * base_bg)


def test_heads_are_summed_and_tokens_averaged():
    mask = box_mask()
    one = spread(mask)
    assert energy(one.expand(3, P, 1), mask) == pytest.approx(3 * energy(one, mask))
    good, bad = spread(mask), spread(~mask)
    two_tokens = torch.cat([good, bad], dim=-1)
    expected = (energy(good, mask) + energy(bad, mask)) / 2
    assert energy(two_tokens, mask) == pytest.approx(expected)
    assert energy(two_tokens, mask, tokens=[1]) == pytest.approx(energy(bad, mask))


def test_total_divides_by_objects_and_layers():
    per_layer = [torch.tensor([[1.0, 3.0]]), torch.tensor([[5.0, 7.0]])]
    assert total_energy(per_layer).tolist() == [pytest.approx(16 / 4)]
    assert total_energy(per_layer, extra=4.0).tolist() == [pytest.approx(20 / 4)]


def test_transfer_loss_is_zero_for_equal_maps_and_two_for_disjoint_ones():
    mask = torch.ones(1, P, dtype=torch.bool)
    a = torch.rand(1, 2, P)
    assert transfer_loss(a, a * 3, mask, 1e-8).item() == pytest.approx(0.0, abs=1e-5)
    left, right = torch.zeros(1, 2, P), torch.zeros(1, 2, P)
    left[..., :10], right[..., 20:30] = 1.0, 1.0
    assert transfer_loss(left, right, mask, 1e-8).item() == pytest.approx(2.0, abs=1e-5)
    # Only the box counts: outside the mask the maps may differ freely.
    box = torch.zeros(1, P, dtype=torch.bool)
    box[0, :10] = True
    assert transfer_loss(left, left + right, box, 1e-8).item() == pytest.approx(0.0, abs=1e-5)


def test_update_and_noise_level():
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    scheduler.set_timesteps(50)
    t = scheduler.timesteps[0]
    expected = math.sqrt(1 - float(scheduler.alphas_cumprod[int(t)]))
    assert noise_level(scheduler, 0, t) == pytest.approx(expected)
    z, g = torch.ones(2), torch.tensor([1.0, -2.0])
    assert guidance_update(z, g, 0.5).tolist() == [0.5, 2.0]


def test_config_defaults_are_the_published_ones():
    c = LMDConfig()
    lmd, plus = get_method("lmd").settings, get_method("lmd+").settings
    assert (c.steps, c.cfg_scale, lmd.blend_ratio, plus.blend_ratio) == (50, 7.5, 0.01, 0.1)
    assert (lmd.box_guidance, plus.box_guidance, plus.max_objects) == (True, False, 30)
    assert (c.fg_weight, c.bg_weight, c.topk_ratio, c.loss_scale) == (1.0, 4.0, 0.2, 5.0)
    assert (c.guidance_until, c.loss_threshold, c.frozen_steps, c.transfer_weight) == (
        30,
        5.0,
        25,
        2.0,
    )
    assert [c.iterations(i) for i in range(31)] == [4] * 5 + [3] * 5 + [2] * 10 + [1] * 10 + [0]
    assert (c.mask_attn_from, c.gaussian_sigma, plus.gligen_steps(c.steps)) == (10, 1.5, 20)
    assert (c.sam_min_confidence, c.sam_min_coarse_iou, c.coarse_threshold) == (0.85, 0.25, 0.25)
    short = c.replace(steps=25)  # step-indexed settings scale with the step count
    assert (short.guidance_until, short.mask_attn_from, short.iterations(0)) == (15, 5, 4)
    with pytest.raises(ValueError, match="topk_ratio"):
        LMDConfig(topk_ratio=0)

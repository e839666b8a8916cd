"""Shared attention's parts on plain tensors: Otsu masks, the extended keys and their mask,
exact-fraction dropout, feature injection, and the step schedules of the settings."""

from __future__ import annotations

import pytest
import torch

from lmd.controller.consistency import ConsistencySettings
from lmd.controller.consistency.attention import drop_exact, inject, shared_keys
from lmd.controller.consistency.masks import otsu, otsu_masks, resize_bool


def between_class_variance(x: torch.Tensor, t: float) -> float:
    low, high = x[x <= t], x[x > t]
    if not len(low) or not len(high):
        return -1.0
    w0 = len(low) / len(x)
    return w0 * (1 - w0) * float(low.mean() - high.mean()) ** 2


def test_otsu_splits_two_groups_and_maximises_the_between_class_variance():
    maps = torch.tensor([[0.1, 0.2, 0.15, 0.9, 0.8, 0.85]])
    assert otsu_masks(maps.reshape(1, 2, 3)).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    x = torch.rand(5, 40, generator=torch.Generator().manual_seed(0)) ** 3
    for row, t in zip(x, otsu(x), strict=True):
        best = max(between_class_variance(row, float(v)) for v in row)
        assert between_class_variance(row, float(t)) == pytest.approx(best)


def test_a_flat_map_gives_an_empty_mask():
    assert not otsu_masks(torch.full((1, 3, 3), 0.5)).any()


def test_masks_keep_small_objects_on_coarse_grids_and_copy_cells_on_fine_ones():
    m = torch.zeros(1, 8, 8, dtype=torch.bool)
    m[0, 5, 6] = True
    coarse = resize_bool(m, (2, 2))
    assert coarse[0].tolist() == [[False, False], [False, True]]
    fine = resize_bool(coarse, (4, 4))
    assert fine[0, 2:, 2:].all() and fine.sum() == 4


def test_shared_keys_give_each_image_its_own_patches_and_its_sources_subjects():
    hidden = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(4, 3, 1)  # 4 rows, P=3
    halves = [[0, 1], [2, 3]]  # image 0, image 1 in each half
    masks = torch.tensor([[True, False, True], [False, True, False]])
    keys, bias = shared_keys(hidden, halves, [[], [0]], masks)
    assert keys.shape == (4, 6, 1) and bias.shape == (4, 1, 6)
    # Image 1 (rows 1 and 3): its own three patches, then image 0's of the same half.
    assert torch.equal(keys[1, :, 0], torch.cat([hidden[1, :, 0], hidden[0, :, 0]]))
    assert torch.equal(keys[3, :, 0], torch.cat([hidden[3, :, 0], hidden[2, :, 0]]))
    assert bias[3, 0].tolist() == [0, 0, 0, 0, float("-inf"), 0]
    # Image 0 (the anchor) attends to itself only; the padding is masked.
    assert bias[0, 0].tolist() == [0, 0, 0] + [float("-inf")] * 3
    dropped = [None, torch.tensor([True, False, False])]
    _, bias = shared_keys(hidden, halves, [[], [0]], masks, dropped)
    assert bias[1, 0].tolist() == [0, 0, 0, float("-inf"), float("-inf"), 0]


def test_dropout_drops_exactly_the_fraction_of_shared_entries_reproducibly():
    shared = torch.rand(3, 200, generator=torch.Generator().manual_seed(1)) > 0.3
    first = drop_exact(shared, 0.5, torch.Generator().manual_seed(7))
    again = drop_exact(shared, 0.5, torch.Generator().manual_seed(7))
    other = drop_exact(shared, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not (first & ~shared).any()  # only shared entries are dropped
    assert first.sum(-1).tolist() == [round(int(n) * 0.5) for n in shared.sum(-1)]
    assert drop_exact(shared, 0.25, torch.Generator().manual_seed(7)).sum(-1).tolist() == [
        round(int(n) * 0.25) for n in shared.sum(-1)
    ]


def test_injection_writes_only_inside_the_mask_where_the_nearest_anchor_patch_is_close():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]])
    mask = torch.tensor([True, True, False, True])
    anchor_features = torch.tensor([[1.0, 0.05], [0.6, 0.8]])
    out = torch.zeros(4, 3)
    anchor_out = torch.tensor([[10.0, 10.0, 10.0], [20.0, 20.0, 20.0]])
    mixed, written = inject(out, features, mask, anchor_out, anchor_features, 0.8, 0.5)
    # Patch 0 is close to anchor patch 0; patch 1 to anchor patch 1 (cos 0.8); patch 2 is
    # outside the mask; patch 3 points away from both (distance > 0.5).
    assert written.tolist() == [True, True, False, False]
    assert mixed[0].tolist() == pytest.approx([8.0] * 3)
    assert mixed[1].tolist() == pytest.approx([16.0] * 3)
    assert torch.equal(mixed[2:], out[2:])
    _, none = inject(out, features, mask, anchor_out, anchor_features, 0.8, 0.1)
    assert none.tolist() == [True, False, False, False]  # only patch 0 is within 0.1


def test_the_schedules_start_at_the_papers_values():
    s = ConsistencySettings()
    assert (s.anchors, s.dropout, s.query_blend, s.injection_weight) == (2, 0.5, 0.9, 0.8)
    assert s.blend_weight(0, 50) == 0.9
    assert s.blend_weight(5, 50) == pytest.approx(0.9 * (1 - 5 / 10))
    assert s.blend_weight(10, 50) == 0.0
    assert [i for i in range(50) if s.injects(i, 50)] == list(range(5, 17))  # n/10 to n/3
    off = ConsistencySettings(share=False)
    assert off.blend_weight(0, 50) == 0 and not off.injects(5, 50)


@pytest.mark.parametrize(
    "bad", [{"anchors": 0}, {"dropout": 1.0}, {"injection_until": 0.05}, {"mask_source": "x"}]
)
def test_settings_out_of_range_name_the_field(bad):
    with pytest.raises(ValueError, match=f"`{next(iter(bad))}`"):
        ConsistencySettings(**bad)

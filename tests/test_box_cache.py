"""`BoxCache` keeps per-box results within a memory budget (bytes), not only an entry count."""

import pytest
import torch
from lmd.layouts import Box, Layout
from PIL import Image

from lmd.controller import BoxCache, BoxKey, BoxResult, Controller, LMDConfig
from lmd.controller.cache import DEFAULT_MAX_BYTES
from lmd.controller.noise import Cells

MB = 2**20


def key(name: str) -> BoxKey:
    return BoxKey("m", name, (4, 4), 1, 2, "bg", (8, 8), LMDConfig())


def result(name: str, frames: torch.Tensor | None = None, image: bool = False) -> BoxResult:
    """A result holding `frames` (default 1 MB of its own) and a 1 kB mask."""
    if frames is None:
        frames = torch.zeros(MB // 4)  # fp32: 1 MB
    return BoxResult(
        key=key(name), cells=Cells(0, 0, 4, 4), frames=frames,
        mask=torch.zeros(1024, dtype=torch.bool), attention={"mid": torch.zeros(0)},
        image=Image.new("RGB", (512, 512)) if image else None,
    )  # fmt: skip


def test_results_are_evicted_least_recently_used_first_to_stay_within_the_budget():
    cache = BoxCache(max_entries=None, max_bytes=int(3.5 * MB))
    for name in "abc":
        cache.put(result(name))
    assert len(cache) == 3 and cache.nbytes == 3 * (MB + 1024)
    cache.get(key("a"))  # a is now the most recent
    cache.put(result("d"))
    assert key("b") not in cache and all(key(n) in cache for n in "acd")
    assert cache.nbytes == 3 * (MB + 1024) <= cache.max_bytes
    cache.clear()
    assert (len(cache), cache.nbytes) == (0, 0)


def test_results_drawn_in_one_batch_share_their_storage_and_count_it_once():
    batch = torch.zeros(2, MB // 4)  # two objects' frames in one tensor: 2 MB
    cache = BoxCache(max_bytes=10 * MB)
    cache.put(result("a", batch[0]))
    cache.put(result("b", batch[1]))
    assert cache.nbytes == 2 * MB + 2 * 1024  # the batch once, plus two masks
    cache.put(result("a", torch.zeros(MB // 4)))  # "a" drawn again on its own
    assert cache.nbytes == 2 * MB + MB + 2 * 1024  # "b" still holds the whole batch
    cache._drop(key("b"))
    assert cache.nbytes == MB + 1024


def test_pictures_count_and_a_result_larger_than_the_budget_is_not_kept():
    cache = BoxCache(max_bytes=2 * MB)
    cache.put(result("a", image=True))
    assert cache.nbytes == MB + 1024 + 512 * 512 * 3
    cache.put(result("big", torch.zeros(MB)))  # 4 MB alone
    assert key("big") not in cache and key("a") in cache


def test_the_entry_cap_still_holds_and_bad_budgets_are_refused():
    cache = BoxCache(max_entries=2, max_bytes=None)
    for name in "abc":
        cache.put(result(name))
    assert [k.name for k in cache._items] == ["b", "c"]
    with pytest.raises(ValueError, match="max_bytes"):
        BoxCache(max_bytes=0)
    assert BoxCache().max_bytes == DEFAULT_MAX_BYTES == 512 * MB


def test_a_real_render_is_measured_and_a_tight_budget_only_costs_reuse(tiny_pipe):
    c = Controller(tiny_pipe, LMDConfig(steps=2), model_id="random:tiny")
    layout = Layout(
        boxes=[Box(name="a cat", x=40, y=220, w=160, h=200), Box(name="a dog", x=300, y=150,
               w=180, h=260)], background="a park",
    )  # fmt: skip
    roomy = BoxCache()
    c.render(layout, seed=1, cache=roomy)
    results = list(roomy._items.values())
    frames = results[0].frames.untyped_storage().nbytes()  # one storage for the batch
    assert frames == results[0].frames.nbytes * 2
    rest = sum(r.mask.nbytes + sum(a.nbytes for a in r.attention.values()) for r in results)
    pictures = sum(r.image.width * r.image.height * 3 for r in results)
    assert roomy.nbytes == frames + rest + pictures
    tight = BoxCache(max_bytes=roomy.nbytes // 4)
    first = c.render(layout, seed=1, cache=tight)
    again = c.render(layout, seed=1, cache=tight)
    assert len(tight) == 0 and again.reused == 0
    assert again.image.tobytes() == first.image.tobytes()

"""`--method migc` / `migc++` through the controller: MIGC's layers shade the first steps of
one pass (random adapter weights on `random:tiny`), deterministic per seed, plain SD after
`MIGCsteps`, weights from a file in the published layout, refused where they cannot run."""

from __future__ import annotations

import pytest
import torch
from lmd.layouts.model import Box, Layout

from lmd.controller import Controller, LMDConfig
from lmd.controller.methods import get_method
from lmd.controller.methods.migc import random_shaders, save_checkpoint
from lmd.controller.trace import TraceRecorder

LAYOUT = Layout(
    boxes=[Box(name="a gray cat", x=20, y=240, w=200, h=220),
           Box(name="a red ball", x=300, y=60, w=180, h=200)],
    background="a grassy park",
)  # fmt: skip


def migc(variant: str = "migc", checkpoint: str = "random"):
    return get_method(variant).with_settings(checkpoint=checkpoint)


def test_migc_renders_deterministically_and_unlike_plain_sd(tiny_pipe):
    c = Controller(tiny_pipe, LMDConfig(steps=4))
    first = c.render(LAYOUT, seed=1, method=migc())
    assert c.render(LAYOUT, seed=1, method=migc()).image.tobytes() == first.image.tobytes()
    assert c.render(LAYOUT, seed=2, method=migc()).image.tobytes() != first.image.tobytes()
    assert c.render(LAYOUT, seed=1, method="sd").image.tobytes() != first.image.tobytes()
    assert first.counts.forwards == 4 and first.generated == 0  # one pass


@pytest.mark.parametrize(("copied_after", "equal"), [(2, True), (1, False)])
def test_after_migc_steps_the_pass_is_plain_sd(tiny_pipe, copied_after, equal):
    """25 of 50 at 4 steps: MIGC shades step indices 0..2 (the authors' `ith <= MIGCsteps`).
    Given plain SD's latents after step 2, the last step is plain SD's exactly; after step 1
    it is not (step 2 still shades)."""
    c = Controller(tiny_pipe, LMDConfig(steps=4))
    plain: dict[int, torch.Tensor] = {}
    sd = TraceRecorder()
    c.render(LAYOUT, seed=1, method="sd", trace=sd,
             callback_on_step_end=lambda p, i, t, z: plain.setdefault(i, z.clone()))  # fmt: skip

    def swap(phase, index, t, latents):
        return plain[index] if index == copied_after else None

    mixed = TraceRecorder()
    c.render(LAYOUT, seed=1, method=migc(), trace=mixed, callback_on_step_end=swap)
    same = torch.equal(mixed.last("final_latents"), sd.last("final_latents"))
    assert same == equal


def test_a_checkpoint_in_the_published_layout_draws_what_its_weights_draw(tiny_pipe, tmp_path):
    path = save_checkpoint(random_shaders(tiny_pipe, seed=0), tiny_pipe.unet, tmp_path / "m.ckpt")
    c = Controller(tiny_pipe, LMDConfig(steps=3))
    from_file = c.render(LAYOUT, seed=1, method=migc(checkpoint=str(path)))
    random = c.render(LAYOUT, seed=1, method=migc())
    assert from_file.image.tobytes() == random.image.tobytes()
    plus = save_checkpoint(random_shaders(tiny_pipe, plus=True), tiny_pipe.unet, tmp_path / "p")
    with pytest.raises(ValueError, match="holds migc\\+\\+ weights; use method 'migc\\+\\+'"):
        c.render(LAYOUT, method=migc(checkpoint=str(plus)))
    assert c.render(LAYOUT, method=migc("migc++", str(plus))).image.size == (128, 128)


def test_migc_is_refused_in_one_line_where_it_cannot_run(tiny_pipe, sdxl_tiny_pipe):
    with pytest.raises(ValueError, match="weights for SD 1.x only, not SDXL"):
        Controller(sdxl_tiny_pipe, LMDConfig(steps=2)).render(LAYOUT, method=migc())
    with pytest.raises(ValueError, match="needs its weights: pass the checkpoint file"):
        Controller(tiny_pipe, LMDConfig(steps=2)).render(LAYOUT, method="migc")

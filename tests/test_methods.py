"""The method registry: a new method is one `Method` subclass and a `register` call; nothing
else in lmd changes, and it renders through the controller and the Python API."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from lmd.layouts.model import Box, Layout

from lmd.api import Renderer, RenderSettings
from lmd.controller import BoxCache, Controller, LMDConfig
from lmd.controller.methods import LMD, get_method, method_names, register, unregister
from lmd.controller.noise import to_cells
from lmd.controller.trace import TraceRecorder

LAYOUT = Layout(
    boxes=[Box(name="a gray cat", x=20, y=240, w=200, h=220),
           Box(name="a dog", x=300, y=60, w=180, h=200)],
    background="a grassy park",
)  # fmt: skip


@dataclass(frozen=True)
class InPlace(LMD):
    """Test-only: LMD that draws each object in its own box, so nothing is shifted."""

    name = "test-in-place"

    def draw_at(self, cells, latent_hw, config):
        return cells

    def offset(self, mask, drawn, box, centre, latent_hw, config):
        return box.x - drawn.x, box.y - drawn.y


@pytest.fixture
def in_place():
    method = register(InPlace())
    yield method
    unregister(method.name)


def test_the_built_in_methods_are_registered_once():
    assert method_names() == ("lmd", "lmd+", "sd", "attnmod", "migc", "migc++")
    with pytest.raises(
        ValueError, match="one of lmd, lmd[+], sd, attnmod, migc, migc[+][+] but is 'x'"
    ):
        get_method("x")


def test_a_registered_method_renders_without_changes_elsewhere(in_place, tiny_pipe):
    assert "test-in-place" in method_names()
    c = Controller(tiny_pipe, LMDConfig(steps=3))
    trace, lmd_trace = TraceRecorder(), TraceRecorder()
    result = c.render(LAYOUT, method="test-in-place", trace=trace)
    c.render(LAYOUT, method="lmd", trace=lmd_trace)
    for i, box in enumerate(result.layout.boxes):
        assert trace.last(f"box{i}.shift").tolist() == [0, 0]
        # Drawn in place: the object's own noise sits in its box, not centred.
        cells = to_cells(box.xyxy, (128, 128), (16, 16))
        inside = cells.mask(16, 16)
        name = f"box{i}.initial_latents"
        assert not torch.equal(trace.last(name)[:, inside], lmd_trace.last(name)[:, inside])
    # The Python API takes it by name too.
    settings = RenderSettings(model="random:tiny", method="test-in-place", steps=2, sam=False)
    drawn = Renderer(settings.check()).render(LAYOUT)
    assert drawn.generated == 2


def test_a_methods_settings_are_its_own_and_key_the_cache(tiny_pipe):
    c = Controller(tiny_pipe, LMDConfig(steps=3))
    cache = BoxCache()
    first = c.render(LAYOUT, cache=cache)
    stronger = get_method("lmd").with_settings(blend_ratio=0.5)
    assert get_method("lmd").settings.blend_ratio == 0.01  # the registered one is unchanged
    other = c.render(LAYOUT, method=stronger, cache=cache)
    assert (other.generated, other.reused) == (2, 0)
    assert other.image.tobytes() != first.image.tobytes()
    assert c.render(LAYOUT, method=stronger, cache=cache).reused == 2
    with pytest.raises(ValueError, match="blend_ratio"):
        get_method("lmd").with_settings(blend_ratio=2.0)

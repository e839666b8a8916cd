"""`callback_on_step_end(phase, step, t, latents)`, as diffusers' pipelines have it: every
phase's latents after each step, which the callback may replace; on `Controller.render`,
`Renderer.render` and `generate()`."""

from __future__ import annotations

import torch
from lmd.layouts.model import Box, Layout

from lmd.api import generate
from lmd.controller import Controller, LMDConfig
from lmd.controller.trace import TraceRecorder

LAYOUT = Layout(boxes=[Box(name="a cat", x=40, y=220, w=160, h=200)], background="a park")
REPLY = "Objects: [('a cat', [40, 220, 160, 200])]\nBackground prompt: a park\nNegative prompt: \n"


def test_the_callback_sees_every_phase_and_step_and_may_replace_the_latents(tiny_pipe):
    seen = []

    def watch(phase, step, t, latents):
        seen.append((phase, step, tuple(latents.shape)))
        if phase == "overall" and step == 2:
            return torch.zeros_like(latents)
        return None

    trace = TraceRecorder()
    c = Controller(tiny_pipe, LMDConfig(steps=3))
    c.render(LAYOUT, trace=trace, callback_on_step_end=watch)
    assert seen == [("boxes", i, (1, 4, 16, 16)) for i in range(3)] + [
        ("overall", i, (1, 4, 16, 16)) for i in range(3)
    ]
    assert torch.equal(trace.last("final_latents"), torch.zeros(1, 4, 16, 16))
    plain = TraceRecorder()
    c.render(LAYOUT, trace=plain, method="sd", callback_on_step_end=lambda *a: None)
    assert plain.last("final_latents").abs().sum() > 0  # returning None keeps the latents


def test_generate_hands_the_callback_on(make_planner, llm_server):
    llm_server.enqueue(REPLY)
    phases = set()
    generate(
        "a cat in a park", planner=make_planner(), model="random:tiny", steps=2, sam=False,
        callback_on_step_end=lambda phase, step, t, z: phases.add(phase),
    )  # fmt: skip
    assert phases == {"boxes", "overall"}

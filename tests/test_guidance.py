"""Energy guidance on the tiny UNet: it lowers the energy, respects the threshold per box."""

import torch

from lmd.controller.attention import AttentionStore, find_hooked_layers, installed
from lmd.controller.config import LMDConfig
from lmd.controller.engine import Run
from lmd.controller.noise import Cells
from lmd.controller.per_box import BoxEnergy
from lmd.controller.prompts import box_prompt, box_tokens

NAMES = ["a gray cat", "a red ball"]
CELLS = [Cells(1, 4, 6, 8), Cells(9, 2, 5, 5)]


def setup(pipe, **config):
    cfg = LMDConfig(steps=5, **config)
    run = Run(pipe, cfg, "lmd", AttentionStore(find_hooked_layers(pipe.unet)), (128, 128), (16, 16))
    tokens = [box_tokens(pipe.tokenizer, "a park", n) for n in NAMES]
    cond = run.encode([box_prompt("a park", n) for n in NAMES])
    energy = BoxEnergy(run, CELLS, tokens, cond)
    scheduler = run.scheduler()
    energy.scheduler, energy.t = scheduler, scheduler.timesteps[0]
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    return run, energy, scheduler, z


def test_a_guidance_step_lowers_the_energy(tiny_pipe):
    run, energy, scheduler, z = setup(tiny_pipe)
    rows = torch.arange(2)
    with installed(tiny_pipe.unet, run.store):
        z0 = z.clone().requires_grad_(True)
        e0 = energy(z0, rows)
        (grad,) = torch.autograd.grad(e0.sum(), z0)
        with torch.no_grad():
            e1 = energy(z - 20.0 * grad, rows)
    assert (e1 < e0.detach()).all(), (e0, e1)


def test_guide_recomputes_and_stops_per_box_at_the_threshold(tiny_pipe):
    run, energy, scheduler, z = setup(tiny_pipe, loss_threshold=0.0)
    t = scheduler.timesteps[0]
    with installed(tiny_pipe.unet, run.store), torch.no_grad():
        e = energy(z, torch.arange(2))
        out = run.guide(z, 0, t, scheduler, energy)
    # Threshold 0: every box is updated on every allowed iteration (4 at step 0).
    assert run.counts.backwards == 4 and run.counts.box_by_box_backwards == 8
    assert not torch.equal(out[0], z[0]) and not torch.equal(out[1], z[1])

    # A threshold between the two energies: only the box above it moves.
    cut = float(e.mean())
    run, energy, scheduler, _ = setup(tiny_pipe, loss_threshold=cut)
    with installed(tiny_pipe.unet, run.store), torch.no_grad():
        out = run.guide(z, 0, t, scheduler, energy)
    high = int(e.argmax())
    assert not torch.equal(out[high], z[high])
    assert torch.equal(out[1 - high], z[1 - high])
    assert run.counts.guidance_forwards == run.counts.forwards  # all stopped early


def test_no_update_above_the_guided_steps(tiny_pipe):
    run, energy, scheduler, z = setup(tiny_pipe, loss_threshold=0.0)
    late = run.config.guidance_until
    with installed(tiny_pipe.unet, run.store), torch.no_grad():
        out = run.guide(z, late, scheduler.timesteps[late], scheduler, energy)
    assert torch.equal(out, z) and run.counts.forwards == 0

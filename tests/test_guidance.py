"""The real guidance loop (`Run.guide`) on the tiny UNet: it lowers the energy, follows the
iteration schedule, and stops per box by the configured rule."""

import torch

from lmd.controller.attention import AttentionStore, installed
from lmd.controller.backbones.unet import find_hooked_layers
from lmd.controller.captions import box_prompt, box_tokens
from lmd.controller.config import LMDConfig
from lmd.controller.engine import Run
from lmd.controller.guidance import AttentionEnergy, Target
from lmd.controller.noise import Cells

NAMES = ["a gray cat", "a red ball"]
CELLS = [Cells(1, 4, 6, 8), Cells(9, 2, 5, 5)]


def setup(pipe, **config):
    cfg = LMDConfig(steps=5, **config)
    run = Run(pipe, cfg, "lmd", AttentionStore(find_hooked_layers(pipe.unet)), (128, 128), (16, 16))
    tokens = [box_tokens(pipe.tokenizer, "a park", n) for n in NAMES]
    cond = run.encode([box_prompt("a park", n) for n in NAMES])
    targets = [[Target(t.guided, (c,))] for t, c in zip(tokens, CELLS, strict=True)]
    energy = AttentionEnergy(run, cond, targets, ["box0", "box1"])
    scheduler = run.scheduler()
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    return run, energy, scheduler, z


def energies(run, energy, z):
    """The energies of latents `z` at step 0, as the guidance loop evaluates them."""
    scheduler = run.scheduler()
    t = scheduler.timesteps[0]
    with torch.no_grad():
        return energy(scheduler.scale_model_input(z, t), torch.arange(len(z)), t, 0)


def test_the_guidance_loop_lowers_every_boxs_energy(tiny_pipe):
    run, energy, scheduler, z = setup(tiny_pipe, loss_threshold=0.0)
    with installed(tiny_pipe.unet, run.store), torch.no_grad():
        before = energies(run, energy, z)
        out = run.guide(z, 0, scheduler.timesteps[0], scheduler, energy)
        after = energies(run, energy, out)
    assert (after < before).all(), (before, after)
    assert run.counts.backwards == run.config.iterations(0) == 4


def test_guide_recomputes_and_stops_per_box_at_the_threshold(tiny_pipe):
    run, energy, scheduler, z = setup(tiny_pipe, loss_threshold=0.0)
    t = scheduler.timesteps[0]
    with installed(tiny_pipe.unet, run.store), torch.no_grad():
        e = energies(run, energy, z)
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


def test_the_papers_carried_stop_rule_updates_below_the_threshold_then_never_again(tiny_pipe):
    """`stop_rule` "carried" (the paper's): the update after an evaluation at or below the
    threshold still happens, and the phase is never guided again, even where the energy is
    back above the threshold; "recompute" does neither."""
    run, energy, scheduler, z = setup(tiny_pipe)
    with installed(tiny_pipe.unet, run.store), torch.no_grad():
        first = energies(run, energy, z)
    threshold = float(first.max()) + 1e-4  # both boxes start just below it
    t0, t1 = scheduler.timesteps[:2]
    # Later latents whose energy is above the threshold again (mostly outside the boxes).
    far = z + 4 * torch.randn(z.shape, generator=torch.Generator().manual_seed(9))
    for rule in ("carried", "recompute"):
        run, energy, scheduler, _ = setup(tiny_pipe, loss_threshold=threshold, stop_rule=rule)
        carried = torch.full((2,), float("inf"))
        with installed(tiny_pipe.unet, run.store), torch.no_grad():
            out = run.guide(z, 0, t0, scheduler, energy, carried)
            assert (not torch.equal(out, z)) == (rule == "carried")  # one update below it
            forwards, backwards = run.counts.forwards, run.counts.backwards
            late = run.guide(far, 1, t1, scheduler, energy, carried)
        if rule == "carried":
            assert run.counts.forwards == forwards and torch.equal(late, far)  # never again
            assert (carried <= threshold).all()
        else:
            assert run.counts.backwards > backwards  # the energy there was above: guided


def test_no_update_above_the_guided_steps(tiny_pipe):
    run, energy, scheduler, z = setup(tiny_pipe, loss_threshold=0.0)
    late = run.config.guidance_until
    with installed(tiny_pipe.unet, run.store), torch.no_grad():
        out = run.guide(z, late, scheduler.timesteps[late], scheduler, energy)
    assert torch.equal(out, z) and run.counts.forwards == 0


def test_classifier_free_guidance_is_uncond_plus_scale_times_the_difference(tiny_pipe):
    """The CFG batch is [uncond, cond]: guided = uncond + s * (cond - uncond)."""
    run, _, scheduler, z = setup(tiny_pipe, cfg_scale=3.0)
    uncond, cond = run.encode(["dark"]), run.encode(["a park with a gray cat"])
    t = scheduler.timesteps[0]
    guided = run.predict(z[:1], t, cond, uncond, scheduler)
    with torch.no_grad():
        e_u = tiny_pipe.unet(z[:1], t, encoder_hidden_states=uncond.embeds)[0]
        e_c = tiny_pipe.unet(z[:1], t, encoder_hidden_states=cond.embeds)[0]
    assert torch.allclose(guided, e_u + 3.0 * (e_c - e_u), atol=1e-5)
    assert not torch.allclose(guided, e_c + 3.0 * (e_u - e_c), atol=1e-3)

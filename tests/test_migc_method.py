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


def test_lmd_render_migc_takes_its_weights_from_migc_checkpoint(tiny_pipe, tmp_path, capsys):
    """`--migc-checkpoint FILE` draws with that file's weights (a random model without it gets
    random ones, seed 0: the same here); a missing file or a real model without weights is one
    line and exit 1 before anything loads."""
    import json

    from PIL import Image

    from lmd.cli import run

    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(LAYOUT.model_dump()))
    mine = save_checkpoint(random_shaders(tiny_pipe, seed=7), tiny_pipe.unet, tmp_path / "m.ckpt")
    argv = ["render", str(layout), "--model", "random:tiny", "--steps", "3", "--device", "cpu",
            "--method", "migc"]  # fmt: skip
    pictures = {}
    for name, extra in [("random", []), ("file", ["--migc-checkpoint", str(mine)])]:
        assert run([*argv, "-o", str(tmp_path / name), *extra]) == 0
        pictures[name] = Image.open(tmp_path / name / "image.png").tobytes()
    assert pictures["random"] != pictures["file"]  # the file's weights drew it

    capsys.readouterr()
    assert run([*argv, "-o", str(tmp_path / "x"), "--migc-checkpoint", "gone.ckpt"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("'gone.ckpt' is no file") and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_a_model_of_another_family_is_refused_before_it_loads(tmp_path, capsys):
    """MIGC's weights are SD 1.x's: an SDXL random model, or a folder whose files say SD 2.x,
    is one line and exit 1, and nothing loads (no "loading model" line)."""
    import json

    from lmd.cli import run
    from lmd.models import known_family

    folder = tmp_path / "sd21"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet"]}))
    (folder / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 1024}))
    assert [known_family(m) for m in ("random:tiny", "random:sd2-tiny", "random:sdxl-tiny")] == [
        "sd1", "sd2", "sdxl",
    ]  # fmt: skip
    assert known_family(str(folder)) == "sd2"
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(LAYOUT.model_dump()))
    for model, label in (("random:sdxl-tiny", "SDXL"), (str(folder), "SD 2.x")):
        capsys.readouterr()
        argv = ["render", str(layout), "-o", str(tmp_path / "out"), "--model", model]
        assert run([*argv, "--method", "migc", "--device", "cpu"]) == 1
        err = capsys.readouterr().err
        assert err.strip() == (
            f"error: --method 'migc' has published weights for SD 1.x only, not {label}; use "
            "method 'lmd' or 'attnmod'"
        )

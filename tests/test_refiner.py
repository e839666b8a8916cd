"""The SDXL refiner loader: a tiny random refiner saved to a folder stands in for the weights."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lmd.models import ModelLoadError
from lmd.refiner import Refiner, load_refiner


def test_refiner_from_local_folder(tiny_refiner_dir):
    refiner = load_refiner(str(tiny_refiner_dir), device="cpu", dtype="fp32")
    assert isinstance(refiner, Refiner) and refiner.strength == 0.3
    refiner.num_inference_steps = 4
    image = Image.new("RGB", (64, 48), (120, 60, 30))
    first = refiner(image, "a cat", seed=1)
    assert first.size == image.size and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(refiner(image, "a cat", seed=1)))
    with pytest.raises(ValueError, match="`strength`"):
        refiner(image, strength=0.0)


def test_refiner_not_cached_offline():
    with pytest.raises(ModelLoadError) as info:
        load_refiner(device="cpu")
    text = str(info.value)
    assert "'stabilityai/stable-diffusion-xl-refiner-1.0'" in text and "local cache" in text
    assert "\n" not in text


def test_refiner_bad_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_refiner(str(tmp_path), device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_refiner(str(tmp_path / "missing"), device="cpu")


def test_lmd_render_takes_the_refiner_by_flag(tiny_refiner_dir, tmp_path, capsys):
    from lmd.cli import run

    layout = tmp_path / "layout.json"
    layout.write_text('{"boxes": [], "background": "a park"}')
    args = ["render", str(layout), "--model", "random:tiny", "--steps", "2", "--device", "cpu"]
    assert run([*args, "-o", str(tmp_path / "plain")]) == 0
    assert run([*args, "-o", str(tmp_path / "refined"), "--refiner", str(tiny_refiner_dir)]) == 0
    plain = Image.open(tmp_path / "plain" / "image.png")
    refined = Image.open(tmp_path / "refined" / "image.png")
    assert refined.size == plain.size and refined.tobytes() != plain.tobytes()
    assert run([*args, "-o", str(tmp_path / "x"), "--refiner", str(tmp_path / "none")]) == 1
    assert "pass a local diffusers folder as --refiner" in capsys.readouterr().err

"""`lmd generate` and `lmd render` end to end on the SD 2.x and SDXL tiny random models."""

from __future__ import annotations

import pytest
from PIL import Image

from lmd.cli import run

CAT = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a dog', [260, 200, 200, 240])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
FAST = ["--steps", "2", "--device", "cpu"]


@pytest.mark.parametrize("model", ["random:sdxl-tiny", "random:sd2-tiny"])
def test_generate_and_render_draw_with_the_family(model, llm_env, tmp_path, capsys):
    llm_env.enqueue(CAT)
    out = tmp_path / "out"
    assert run(["generate", "a cat and a dog", "-o", str(out), "--model", model, *FAST]) == 0
    with Image.open(out / "image.png") as image:
        assert image.size == (128, 128)  # the tiny UNet's native size
    again = tmp_path / "again"
    args = ["render", str(out / "layout.json"), "-o", str(again), "--model", model, *FAST]
    assert run(args) == 0
    assert (again / "image.png").read_bytes() == (out / "image.png").read_bytes()


def test_lmd_plus_on_sdxl_stops_before_loading_with_one_line(tmp_path, capsys):
    layout = tmp_path / "layout.json"
    layout.write_text(
        '{"boxes": [{"name": "a cat", "x": 10, "y": 10, "w": 90, "h": 90}], "background": "a park"}'
    )
    args = ["render", str(layout), "-o", str(tmp_path / "out"), "--model", "random:sdxl-tiny"]
    assert run([*args, "--method", "lmd+", *FAST]) == 1
    out, err = capsys.readouterr()
    assert "loading model" not in out + err
    (line,) = err.strip().splitlines()
    assert "SDXL" in line and "GLIGEN" in line and "--method lmd" in line
    assert not (tmp_path / "out").exists()

"""`lmd render` end to end on tiny models: random:tiny and a tiny model in a local folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lmd.cli import run

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = {
    "boxes": [
        {"name": "a gray cat", "x": 40, "y": 220, "w": 160, "h": 200},
        {"name": "a dog", "x": 300, "y": 150, "w": 180, "h": 260},
    ],
    "background": "a grassy park",
    "negative": "",
    "width": 512,
    "height": 512,
}
FAST = ["--steps", "3", "--device", "cpu"]


@pytest.fixture
def layout_file(tmp_path) -> Path:
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(LAYOUT))
    return path


@pytest.mark.parametrize("method", ["lmd", "lmd+", "sd"])
def test_render_random_tiny_writes_the_files(method, layout_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["render", str(layout_file), "-o", str(out), "--model", "random:tiny", *FAST]
    assert run([*argv, "--method", method, "--save-intermediates"]) == 0
    image = Image.open(out / "image.png")
    assert image.size == (128, 128)  # the model's native size
    assert Image.open(out / "layout.png").size == (128, 128)
    assert json.loads((out / "layout.json").read_text())["boxes"] == LAYOUT["boxes"]
    objects = sorted(p.name for p in (out / "objects").glob("*.png")) if method != "sd" else []
    if method != "sd":
        assert objects == ["00-a-gray-cat.mask.png", "00-a-gray-cat.png", "01-a-dog.mask.png",
                           "01-a-dog.png"]  # fmt: skip
        assert Image.open(out / "objects" / "00-a-gray-cat.mask.png").size == (128, 128)
    assert "wrote" in capsys.readouterr().out


def test_render_from_a_local_folder_is_byte_identical_across_runs(
    tiny_sd_dir, layout_file, tmp_path
):
    images = []
    for name in ("a", "b"):
        out = tmp_path / name
        argv = ["render", str(layout_file), "-o", str(out), "--model", str(tiny_sd_dir), *FAST]
        assert run([*argv, "--no-sam", "--seed", "7", "--height", "64", "--width", "96"]) == 0
        images.append((out / "image.png").read_bytes())
    assert images[0] == images[1]
    assert Image.open(tmp_path / "a" / "image.png").size == (96, 64)


def test_render_errors_are_one_line(layout_file, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert run(["render", str(layout_file), "-o", out, "--model", "random:nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "random:nope" in err and "Traceback" not in err
    args = ["render", str(layout_file), "-o", out, "--model", "random:tiny", "--no-sam", *FAST]
    assert run([*args, "--height", "100"]) == 2  # a usage mistake
    err = capsys.readouterr().err
    assert err.endswith("\nError: --height must be a positive multiple of 8 but is 100\n")
    bad = tmp_path / "bad.json"
    bad.write_text('{"boxes": []}')
    assert run(["render", str(bad), "-o", out, "--model", "random:tiny"]) == 1
    assert (
        capsys.readouterr().err
        == f"error: {str(bad)!r} is not a layout: the JSON has no 'background' text\n"
    )
    missing = tmp_path / "missing.json"
    assert run(["render", str(missing), "-o", out]) == 1
    assert capsys.readouterr().err == f"error: No such file or directory: {str(missing)!r}\n"
    assert not (tmp_path / "out").exists()  # nothing written on failure


@pytest.mark.slow
def test_render_as_a_subprocess(layout_file, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lmd", "render", str(layout_file), "-o", str(out),
           "--model", "random:tiny", "--no-sam", *FAST]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "image.png").exists()
    assert "Traceback" not in proc.stderr  # (progress bars are off when stderr is no terminal)
    assert "2 objects drawn" in proc.stdout

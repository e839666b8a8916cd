"""`lmd render -o` and `lmd generate -o` keep earlier pictures: new files are numbered."""

from __future__ import annotations

import threading

from PIL import Image

from lmd.cli import run
from lmd.outputs import output_paths

CAT = (
    "Objects: [('a grey cat', [40, 260, 160, 160])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
TINY = ["--model", "random:tiny", "--steps", "1", "--no-sam"]


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_render_twice_keeps_the_first_picture_and_overwrite_replaces_it(tmp_path, capsys):
    layout, out = tmp_path / "cat.txt", tmp_path / "check"
    layout.write_text(CAT)
    assert run(["render", str(layout), "-o", str(out), *TINY]) == 0
    first = (out / "image.png").read_bytes()
    assert run(["render", str(layout), "-o", str(out), *TINY, "--seed", "1"]) == 0
    assert _names(out) == [
        "image-001.png", "image.png", "layout-001.json", "layout-001.png", "layout.json",
        "layout.png",
    ]  # fmt: skip
    assert (out / "image.png").read_bytes() == first
    assert f"wrote {out / 'image-001.png'}" in capsys.readouterr().out
    assert run(["render", str(layout), "-o", str(out), *TINY, "--seed", "1", "--overwrite"]) == 0
    assert (out / "image.png").read_bytes() == (out / "image-001.png").read_bytes() != first
    assert not (out / "image-002.png").exists()


def test_generate_numbers_its_files_the_same_way(llm_env, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (8, 8)).save(out / "image.png")
    (out / "image-007.png").write_bytes(b"")  # numbers go on from the highest
    llm_env.enqueue(CAT)
    assert run(["generate", "a cat", "-o", str(out), *TINY]) == 0
    assert {"image-008.png", "layout-008.json", "layout-008.png"} <= set(_names(out))
    assert Image.open(out / "image.png").size == (8, 8)


def test_numbers_are_claimed_so_two_writers_never_share_one(tmp_path):
    (tmp_path / "image.png").write_bytes(b"x")
    got: list = []
    threads = [
        threading.Thread(target=lambda: got.append(output_paths(tmp_path)["image"].name))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [f"image-{n:03d}.png" for n in range(1, 9)]


def test_a_fresh_folder_gets_the_plain_names(tmp_path):
    assert {p.name for p in output_paths(tmp_path / "new").values()} == {
        "image.png", "layout.json", "layout.png",
    }  # fmt: skip

"""`lmd render` with layouts a person typed: long names and typos."""

import json
from types import SimpleNamespace

import torch
from lmd.layouts import Box, Layout
from PIL import Image

from lmd.cli import run
from lmd.cli.render import SLUG_CHARS, object_slug, save_objects

FAST = ["--model", "random:tiny", "--steps", "2", "--device", "cpu", "--no-sam"]


def test_per_object_files_of_a_300_character_name_fit_the_file_system(tmp_path):
    name = "a very " + "long " * 58 + "cat."
    layout = Layout(boxes=[Box(name=name, x=0, y=0, w=64, h=64)], background="a park")
    result = SimpleNamespace(
        image=Image.new("RGB", (64, 64)), layout=layout,
        box_images=[Image.new("RGB", (64, 64))], masks=[torch.ones(8, 8, dtype=torch.bool)],
    )  # fmt: skip
    paths = save_objects(tmp_path / "objects", result)
    stem = "00-a-very-" + "long-" * 8 + "l"
    assert len(stem) == 3 + SLUG_CHARS
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.mask.png"]
    assert all(p.is_file() for p in paths)
    assert layout.boxes[0].name == name.removesuffix(".")  # normalised at the boundary
    assert object_slug("一只猫!") == "object" and object_slug("A Cat (black)") == "a-cat-black"


def test_a_typo_in_a_layout_file_names_the_key_and_the_closest_one(tmp_path, capsys):
    for typo, known in (("boxs", "boxes"), ("negatve", "negative"), ("heigth", "height")):
        layout = {"boxes": [], "background": "a park", typo: 1}
        if typo == "boxs":
            layout = {"boxs": [], "background": "a park"}
        path = tmp_path / f"{typo}.json"
        path.write_text(json.dumps(layout))
        assert run(["render", str(path), "-o", str(tmp_path / "out"), *FAST]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"error: {str(path)!r} is not a layout: unknown key '{typo}' in the layout; "
            f"did you mean '{known}'?\n"
        )
    assert not (tmp_path / "out").exists()

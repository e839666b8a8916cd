"""`--paper` and `RenderSettings(paper=True)`: the render commands switch to LMDConfig.paper()."""

import json

import pytest
from PIL import Image

from lmd.api import RenderSettings, load_controller
from lmd.cli import run
from lmd.controller import LMDConfig

LAYOUT = {
    "boxes": [{"name": "a gray cat", "x": 40, "y": 220, "w": 160, "h": 200},
              {"name": "a dog", "x": 300, "y": 150, "w": 180, "h": 260}],
    "background": "a grassy park",
}  # fmt: skip
TINY = ["--model", "random:tiny", "--steps", "2", "--device", "cpu", "--no-sam"]


def test_render_settings_paper_loads_the_papers_config():
    tiny = {"model": "random:tiny", "steps": 3, "sam": False, "device": "cpu"}
    assert load_controller(RenderSettings(**tiny, paper=True)).config == LMDConfig.paper(steps=3)
    assert load_controller(RenderSettings(**tiny)).config == LMDConfig(steps=3)


def test_lmd_render_paper_draws_the_papers_picture(tmp_path, capsys):
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps(LAYOUT))
    pictures = {}
    for flag in ([], ["--paper"]):
        out = tmp_path / ("paper" if flag else "lmd")
        assert run(["render", str(layout), "-o", str(out), *TINY, *flag]) == 0
        pictures[bool(flag)] = Image.open(out / "image.png").tobytes()
    # The paper seeds objects 20, 21 by name order; lmd per object identity.
    assert pictures[True] != pictures[False]
    capsys.readouterr()


@pytest.mark.parametrize("command", [["render"], ["generate"], ["chat"], ["bench", "speed"],
                                     ["bench", "edit"], ["batch"], ["web"]])  # fmt: skip
def test_every_render_command_takes_paper(command, capsys):
    assert run([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--paper" in out
    if command[0] != "bench":
        assert "--refiner" in out


def test_a_batch_folder_keeps_paper_and_one_from_before_the_option_resumes(tmp_path, capsys):
    jobs = tmp_path / "p.jsonl"
    jobs.write_text(json.dumps({"layout": LAYOUT}) + "\n")
    out = tmp_path / "out"
    assert run(["batch", str(jobs), "-o", str(out), *TINY, "--paper"]) == 0
    assert json.loads((out / "batch.json").read_text())["settings"]["paper"] is True
    capsys.readouterr()
    assert run(["batch", str(jobs), "-o", str(out), *TINY]) == 1
    assert "paper=True" in capsys.readouterr().err
    # A folder drawn before `paper` existed was drawn with lmd's defaults: it resumes.
    record = json.loads((out / "batch.json").read_text())
    del record["settings"]["paper"]
    (out / "batch.json").write_text(json.dumps(record))
    assert run(["batch", str(jobs), "-o", str(out), *TINY]) == 0
    assert "1 done, 0 failed" in capsys.readouterr().out

"""`lmd chat` on `random:tiny` keeps the cat's look across turns: the scripted LLM on the
loopback server, the real renderer. "make it night" anchors the cat to turn 1; `/consistent
off` draws it fresh; the record and the switch survive resuming the session."""

from __future__ import annotations

import io
import json

import pytest
from lmd.layouts import Layout

from lmd.api import Renderer, RenderSettings
from lmd.cli import run

TINY = ["--model", "random:tiny", "--steps", "2", "--height", "64", "--width", "64",
        "--no-sam", "--device", "cpu"]  # fmt: skip
CAT = (
    "Objects: [('a grey cat', [60, 200, 220, 260])]\n"
    "Background prompt: {background}\nNegative prompt: "
)


def chat(monkeypatch, capsys, *argv: str, stdin: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = run(["chat", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def alone(turn: dict) -> bytes:
    """The turn's layout drawn by the same renderer with no anchor."""
    settings = RenderSettings(model="random:tiny", steps=2, height=64, width=64, sam=False,
                              device="cpu")  # fmt: skip
    result = Renderer(settings).render(
        Layout.model_validate(turn["layout"]), seed=turn["background_seed"],
        object_seeds=turn["object_seeds"],
    )  # fmt: skip
    return result.image.tobytes()


def picture(path) -> bytes:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


@pytest.mark.slow
def test_night_keeps_the_cats_anchor_and_consistent_off_draws_it_fresh(
    llm_env, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "c"
    park, night, rain, sofa = (CAT.format(background=b) for b in
                               ("a park", "a park at night", "a rainy park", "a sofa"))  # fmt: skip
    llm_env.enqueue(park, night)
    code, out, err = chat(monkeypatch, capsys, "-o", str(folder), *TINY,
                          stdin="a grey cat in a park\nmake it night\n")  # fmt: skip
    assert code == 0, err
    assert "(1 drawn, 0 reused; a grey cat as in turn 1)" in out
    turns = json.loads((folder / "session.json").read_text())["turns"]
    assert turns[1]["anchors"] == {"obj1": 0}
    assert picture(folder / "turn-002.png") != alone(turns[1])  # the anchor changed the cat

    # Resumed: the record is there; /consistent off draws the next turn on its own.
    session = ["--session", str(folder / "session.json"), "--no-sam", "--device", "cpu"]
    llm_env.enqueue(rain)
    code, out, err = chat(monkeypatch, capsys, *session, stdin="/consistent off\nmake it rain\n")
    assert code == 0, err
    saved = json.loads((folder / "session.json").read_text())
    assert saved["meta"]["consistent"] is False
    assert saved["turns"][1]["anchors"] == {"obj1": 0} and saved["turns"][2]["anchors"] == {}
    assert picture(folder / "turn-003.png") == alone(saved["turns"][2])

    # Resumed again: still off until turned on; then the cat keeps the last turn's look.
    llm_env.enqueue(sofa)
    code, out, err = chat(monkeypatch, capsys, *session,
                          stdin="/consistent\n/consistent on\nput the cat on a sofa\n")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("consistent: off") and lines[1].startswith("consistent: on")
    saved = json.loads((folder / "session.json").read_text())
    assert saved["meta"]["consistent"] is True
    assert saved["turns"][3]["anchors"] == {"obj1": 2}  # turn 3 drew it without an anchor

"""`lmd story` and `generate_story`: captions read from a file, one plan each with the earlier
objects named to the LLM, one shared-attention render on `random:tiny`, the files, the same
pictures for the same seed. The LLM is the real litellm client on the loopback server."""

from __future__ import annotations

import json
import re

import pytest
from lmd.prompts import plan_story

from lmd.cli import run
from lmd.story import read_captions

TINY = ["--model", "random:tiny", "--steps", "2", "--height", "64", "--width", "64",
        "--no-sam", "--device", "cpu"]  # fmt: skip
CAPTIONS = ["a grey cat on a beach", "the cat in the snow", "the cat on a sofa",
            "the cat in a city at night"]  # fmt: skip
SCENES = [("a beach", "a red ball"), ("a snowy forest", "a sled"), ("a living room", "a sofa"),
          ("a city street at night", "a taxi")]  # fmt: skip


def answer(k: int) -> str:
    background, other = SCENES[k]
    return (
        f"Objects: [('a grey cat', [{40 + 60 * k}, 220, 200, 240]), ('{other}', [300, 40, 150, "
        f"150])]\nBackground prompt: {background}\nNegative prompt: "
    )


def test_each_caption_after_the_first_is_told_the_objects_drawn_before(llm_server, make_planner):
    llm_server.enqueue(*(answer(k) for k in range(3)))
    planner = make_planner()
    heard = []
    plans = plan_story(planner, CAPTIONS[:3], lambda k, plan: heard.append((k, plan.layout)))
    assert [k for k, _ in heard] == [0, 1, 2]
    asked = llm_server.messages
    assert asked[0] == planner.plan_messages(CAPTIONS[0])  # the first is a plain plan
    assert asked[1][-1]["content"] == (
        "Caption: the cat in the snow\nObjects of the earlier pictures: 'a grey cat', 'a red ball'"
    )
    assert asked[2][-1]["content"].endswith("'a grey cat', 'a red ball', 'a sled'")
    assert "give its box exactly the listed name" in asked[1][0]["content"]
    assert asked[1][0]["content"].startswith(asked[0][0]["content"])
    assert [p.layout.names[0] for p in plans] == ["a grey cat"] * 3


def test_captions_come_from_lines_or_a_json_list(tmp_path):
    lines = tmp_path / "story.txt"
    lines.write_text("a cat on a beach\n\n# the second picture\n  the cat   in the snow \n")
    assert read_captions(lines) == ["a cat on a beach", "the cat in the snow"]
    listed = tmp_path / "story.json"
    listed.write_text(json.dumps(["a cat", "the cat asleep"]))
    assert read_captions(listed) == ["a cat", "the cat asleep"]
    for text, problem in [("[1, 2]", "must be a JSON list of captions"),
                          ('["a cat",', "is not a JSON list"), ("\n# only\n", "is empty"),
                          ('["a cat", " "]', "has an empty caption")]:  # fmt: skip
        listed.write_text(text)
        with pytest.raises(ValueError, match=problem):
            read_captions(listed)


def test_bad_input_is_one_line_and_asks_nothing(llm_env, tmp_path, capsys):
    assert run(["story", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o"), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing.txt" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert run(["story", str(empty), "-o", str(tmp_path / "o"), *TINY]) == 1
    assert "is empty" in capsys.readouterr().err
    assert run(["bench", "story", "--counts", "two"]) == 2
    assert "--counts" in capsys.readouterr().err
    assert llm_env.requests == [] and not (tmp_path / "o").exists()


def test_a_story_of_four_captions_writes_four_pictures_and_a_contact_sheet(
    llm_env, tmp_path, capsys
):
    llm_env.enqueue(*(answer(k) for k in range(4)))
    prompts = tmp_path / "story.json"
    prompts.write_text(json.dumps(CAPTIONS))
    assert run(["story", str(prompts), "-o", str(tmp_path / "o"), *TINY, "--method", "sd"]) == 0
    out = capsys.readouterr().out
    wrote = [line.removeprefix("wrote ") for line in out.splitlines() if line.startswith("wrote")]
    pictures = [p for p in wrote if re.search(r"picture-\d\d\.png$", p)]
    assert pictures == [str(tmp_path / "o" / f"picture-{k:02d}.png") for k in range(1, 5)]
    assert wrote[-2:] == [str(tmp_path / "o" / n) for n in ("contact-sheet.png", "story.json")]
    from PIL import Image

    with Image.open(tmp_path / "o" / "contact-sheet.png") as sheet:
        assert sheet.width > 4 * 64 and sheet.height > 64


@pytest.mark.slow
def test_lmd_story_writes_a_picture_per_caption_the_same_for_the_same_seed(
    llm_env, tmp_path, capsys
):
    llm_env.enqueue(*(answer(k) for k in range(4)))
    prompts = tmp_path / "story.txt"
    prompts.write_text("\n".join(CAPTIONS) + "\n")
    first = tmp_path / "first"
    assert run(["story", str(prompts), "-o", str(first), *TINY, "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "4 pictures: " in out and "shared: 'a grey cat'; anchors: 1, 2" in out
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(
        [f"picture-{k:02d}{ext}" for k in range(1, 5)
         for ext in (".png", ".layout.json", ".layout.png")]
        + ["contact-sheet.png", "story.json"]
    )  # fmt: skip
    record = json.loads((first / "story.json").read_text())
    assert record["captions"] == CAPTIONS and record["subjects"] == ["a grey cat"]
    assert record["seed"] == 5 and record["method"] == "lmd" and record["anchors"] == [1, 2]
    # Again with the same seed (the replies come from the cache: the server has none left).
    again = tmp_path / "again"
    assert run(["story", str(prompts), "-o", str(again), *TINY, "--seed", "5"]) == 0
    other = tmp_path / "other"
    assert run(["story", str(prompts), "-o", str(other), *TINY, "--seed", "6"]) == 0
    for k in range(1, 5):
        picture = (first / f"picture-{k:02d}.png").read_bytes()
        assert (again / f"picture-{k:02d}.png").read_bytes() == picture
        assert (other / f"picture-{k:02d}.png").read_bytes() != picture
    assert len(llm_env.requests) == 4

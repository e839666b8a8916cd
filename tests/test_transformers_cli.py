"""`lmd render`, `generate`, `chat`, `batch`, `web` and `bench speed` end to end on
`random:flux-tiny` (FLUX: packed latents, no unconditional batch), with the loopback LLM."""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image

from lmd.cli import run
from tests.web_server import NO_GRADIO, free_port

CAT = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a dog', [260, 200, 200, 240])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
DOG_UP = CAT.replace("[260, 200,", "[260, 40,")
FLUX = ["--model", "random:flux-tiny", "--steps", "2", "--device", "cpu"]
SMALL = [*FLUX, "--height", "64", "--width", "64"]


def test_generate_and_render_draw_with_flux(llm_env, tmp_path, capsys):
    llm_env.enqueue(CAT)
    out = tmp_path / "out"
    assert run(["generate", "a cat and a dog", "-o", str(out), *FLUX]) == 0
    said = capsys.readouterr()
    assert re.search(
        r"2 objects drawn, \d+ transformer forwards, \d+ backwards", said.out + said.err
    )
    with Image.open(out / "image.png") as image:
        assert image.size == (128, 128)  # the tiny VAE's size
    again = tmp_path / "again"
    assert run(["render", str(out / "layout.json"), "-o", str(again), *FLUX]) == 0
    assert (again / "image.png").read_bytes() == (out / "image.png").read_bytes()


def test_lmd_plus_on_flux_stops_before_loading_with_one_line(tmp_path, capsys):
    layout = tmp_path / "layout.json"
    layout.write_text(
        '{"boxes": [{"name": "a cat", "x": 10, "y": 10, "w": 90, "h": 90}], "background": "a park"}'
    )
    args = ["render", str(layout), "-o", str(tmp_path / "out"), *FLUX, "--method", "lmd+"]
    assert run(args) == 1
    out, err = capsys.readouterr()
    assert "loading model" not in out + err
    (line,) = err.strip().splitlines()
    assert "FLUX" in line and "GLIGEN" in line and "--method lmd" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_chat_draws_with_flux_and_an_edit_reuses_the_unmoved_object(
    llm_env, monkeypatch, capsys, tmp_path
):
    llm_env.enqueue(CAT, DOG_UP)
    monkeypatch.setattr("sys.stdin", io.StringIO("a cat and a dog\nmove the dog up\n/quit\n"))
    out_dir = tmp_path / "chat"
    assert run(["chat", "-o", str(out_dir), "--seed", "7", *SMALL]) == 0
    out = capsys.readouterr().out
    assert f"turn 2: {out_dir / 'turn-002.png'}" in out
    session = json.loads((out_dir / "session.json").read_text())
    assert [t["generated"] for t in session["turns"]] == [2, 0]  # the moved dog is reused
    assert session["meta"]["model"] == "random:flux-tiny"
    with Image.open(out_dir / "turn-002.png") as image:
        assert image.size == (64, 64)


@pytest.mark.slow
def test_batch_draws_with_flux(llm_env, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat and a dog\n")
    llm_env.default = CAT
    out = tmp_path / "out"
    assert run(["batch", str(prompts), "-o", str(out), *SMALL, "--seed", "3"]) == 0
    assert "1 done, 0 failed, 0 pending" in capsys.readouterr().out
    meta = json.loads((out / "00000/r0/meta.json").read_text())
    assert meta["settings"]["model"] == "random:flux-tiny" and meta["unet_forwards"] > 0
    with Image.open(out / "00000/r0/image.png") as image:
        assert image.size == (64, 64)


@NO_GRADIO
@pytest.mark.slow
def test_web_serves_a_page_that_draws_with_flux(llm_env, monkeypatch, tmp_path):
    """`lmd web --model random:flux-tiny` in this process: one request through the page, then
    the server stops as on Ctrl+C."""
    from gradio_client import Client

    import lmd.web.app as web_app

    served = web_app.launch
    shown = {}

    def launch_then_use(demo, **kwargs):
        url = served(demo, **kwargs)
        client = Client(url, verbose=False, analytics_enabled=False,
                        download_files=str(tmp_path / "dl"))  # fmt: skip
        shown["out"] = client.predict(words="a cat and a dog", api_name="/send")
        raise KeyboardInterrupt  # as Ctrl+C in `demo.block_thread()`

    llm_env.enqueue(CAT)
    monkeypatch.setattr(web_app, "launch", launch_then_use)
    code = run(["web", "--port", str(free_port()), "--seed", "4", "-o", str(tmp_path / "kept"),
                *SMALL])  # fmt: skip
    assert code == 130
    assert "2 objects: a grey cat, a dog" in shown["out"][2]
    picture = shown["out"][9]  # the picture's download, at the size it was drawn
    with Image.open(picture["value"] if isinstance(picture, dict) else picture) as image:
        assert image.size == (64, 64)


@pytest.mark.slow
def test_bench_speed_worst_case_prints_the_ratio_on_flux(capsys):
    args = ["bench", "speed", "--worst-case", "--boxes", "2", *SMALL]
    assert run(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "model: random:flux-tiny" in lines[0] and "worst case" in lines[0]
    assert re.fullmatch(r"ratio lmd/sd: \d+\.\d\d", lines[-1])
    assert "transformer forwards 2 " in lines[1]  # plain FLUX: one call per step, no CFG batch


def test_story_on_flux_refuses_consistency_before_asking_and_draws_without(
    llm_env, tmp_path, capsys
):
    captions = tmp_path / "story.txt"
    captions.write_text("a grey cat in a park\nthe cat on a sofa\n")
    args = ["story", str(captions), *SMALL, "--method", "sd"]
    assert run([*args, "-o", str(tmp_path / "shared")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "FLUX" in line and "--no-consistency" in line
    assert llm_env.requests == [] and not (tmp_path / "shared").exists()
    llm_env.enqueue(CAT, CAT)
    assert run([*args, "-o", str(tmp_path / "alone"), "--no-consistency"]) == 0
    with Image.open(tmp_path / "alone" / "picture-02.png") as image:
        assert image.size == (64, 64)


def test_a_size_flux_cannot_draw_is_refused_before_asking(llm_env, tmp_path, capsys):
    args = ["generate", "a cat", "-o", str(tmp_path / "o"), *FLUX, "--height", "72"]
    assert run(args) != 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --height must be a multiple of 16 on FLUX.1")
    assert llm_env.requests == [] and not (tmp_path / "o").exists()

"""Every script in examples/ runs with `--model random:tiny` and the loopback LLM (set through
the environment, as a user would), so the examples never rot."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAT_DOG = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
CAR = (
    "Objects: [('a red car', [100, 260, 260, 160])]\n"
    "Background prompt: A realistic photo of a street\nNegative prompt: "
)
FAST = ["--model", "random:tiny", "--steps", "2"]


def _run(monkeypatch, capsys, name: str, *argv: str) -> str:
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_every_example_is_tested():
    tested = {"generate_one.py", "conversation.py", "render_layout.py", "local_llm_server.py",
              "batch_and_score.py"}  # fmt: skip
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_generate_one(llm_env, monkeypatch, capsys, tmp_path):
    llm_env.enqueue(CAT_DOG)
    out = _run(monkeypatch, capsys, "generate_one.py", *FAST, "--out", str(tmp_path))
    assert out.startswith("Objects: [('a grey cat'") and "wrote" in out
    assert Image.open(tmp_path / "image.png").size == (128, 128)


def test_conversation(llm_env, monkeypatch, capsys, tmp_path):
    moved = CAR.replace("[100, 260", "[10, 260")
    dog = moved.replace("160])]", "160]), ('a dog', [300, 300, 150, 150])]")
    llm_env.enqueue(CAR, moved, dog)
    out = _run(monkeypatch, capsys, "conversation.py", *FAST, "--out", str(tmp_path))
    assert "'move the car to the left'" in out and "(0 drawn, 1 reused)" in out
    assert "after undo: ['a red car']" in out
    assert len(json.loads((tmp_path / "session.json").read_text())["turns"]) == 3


def test_render_layout_needs_no_llm(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LMD_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    out = _run(monkeypatch, capsys, "render_layout.py", *FAST, "--out", str(tmp_path))
    assert "2 objects drawn" in out
    assert json.loads((tmp_path / "layout.json").read_text())["boxes"][0]["name"] == "a grey cat"


def test_local_llm_server(llm_env, monkeypatch, capsys, tmp_path):
    llm_env.enqueue(CAR)
    argv = ["--llm-base-url", llm_env.url, "--llm", "openai/local-model", *FAST]
    out = _run(monkeypatch, capsys, "local_llm_server.py", *argv, "--out", str(tmp_path))
    assert f"openai/local-model at {llm_env.url} planned (asked)" in out
    assert llm_env.requests[-1]["model"] == "local-model"
    assert (tmp_path / "image.png").is_file()


def test_batch_and_score(llm_env, monkeypatch, capsys, tmp_path):
    llm_env.default = CAT_DOG
    argv = ["--limit", "1", "--method", "lmd", *FAST, "--out", str(tmp_path)]
    out = _run(monkeypatch, capsys, "batch_and_score.py", *argv).splitlines()
    assert out[0].startswith("4 jobs (4 prompts)") and "4 done" in out[0]
    assert [line.split(":")[0] for line in out[-5:]] == [
        "negation", "numeracy", "attribution", "spatial", "overall",
    ]  # fmt: skip


def test_local_llm_server_without_a_url_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("LMD_LLM_BASE_URL", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _run(monkeypatch, capsys, "local_llm_server.py", *FAST)
    assert exit_info.value.code == 2 and "--llm-base-url" in capsys.readouterr().err

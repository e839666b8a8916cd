"""Every script in examples/ runs as a user runs it, `python examples/NAME.py` in a fresh
process (so a script named like a package it imports would shadow it, and fail here), with
`--model random:tiny` and the loopback LLM set through the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CAT_DOG = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
CAR = (
    "Objects: [('a red car', [100, 260, 260, 160])]\n"
    "Background prompt: A realistic photo of a street\nNegative prompt: "
)
FAST = ["--model", "random:tiny", "--steps", "2"]


def _run(name: str, *argv: str, cwd: Path = ROOT, code: int = 0) -> str:
    """`python examples/NAME ARGV` from `cwd` (the environment as the test set it); stdout."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *argv], cwd=cwd, env=dict(os.environ),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stdout if code == 0 else proc.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_starts_as_a_user_starts_it(name):
    """Its imports resolve from examples/ as the current folder (what `python
    examples/conversation.py` once failed at: the script shadowed the conversation package);
    the full runs are the slow tests below."""
    assert "usage:" in _run(name, "--help", cwd=EXAMPLES)


def test_every_example_is_tested():
    tested = {"generate_one.py", "conversation.py", "render_layout.py", "local_llm_server.py",
              "batch_and_score.py"}  # fmt: skip
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.slow
def test_generate_one(llm_env, tmp_path):
    llm_env.enqueue(CAT_DOG)
    out = _run("generate_one.py", *FAST, "--out", str(tmp_path))
    assert out.startswith("Objects: [('a grey cat'") and "wrote" in out
    assert Image.open(tmp_path / "image.png").size == (128, 128)


@pytest.mark.slow
def test_conversation(llm_env, tmp_path):
    """Run from inside examples/ too: its own folder first on sys.path shadows nothing."""
    moved = CAR.replace("[100, 260", "[10, 260")
    dog = moved.replace("160])]", "160]), ('a dog', [300, 300, 150, 150])]")
    llm_env.enqueue(CAR, moved, dog)
    out = _run("conversation.py", *FAST, "--out", str(tmp_path), cwd=EXAMPLES)
    assert "'move the car to the left'" in out and "(0 drawn, 1 reused)" in out
    assert "after undo: ['a red car']" in out
    assert len(json.loads((tmp_path / "session.json").read_text())["turns"]) == 3


@pytest.mark.slow
def test_render_layout_needs_no_llm(monkeypatch, tmp_path):
    monkeypatch.setenv("LMD_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    out = _run("render_layout.py", *FAST, "--out", str(tmp_path))
    assert "2 objects drawn" in out
    assert json.loads((tmp_path / "layout.json").read_text())["boxes"][0]["name"] == "a grey cat"


@pytest.mark.slow
def test_local_llm_server(llm_env, tmp_path):
    llm_env.enqueue(CAR)
    argv = ["--llm-base-url", llm_env.url, "--llm", "openai/local-model", *FAST]
    out = _run("local_llm_server.py", *argv, "--out", str(tmp_path))
    assert f"openai/local-model at {llm_env.url} planned (asked)" in out
    assert llm_env.requests[-1]["model"] == "local-model"
    assert (tmp_path / "image.png").is_file()


@pytest.mark.slow
def test_batch_and_score(llm_env, tmp_path):
    llm_env.default = CAT_DOG
    argv = ["--limit", "1", "--method", "lmd", *FAST, "--out", str(tmp_path)]
    out = _run("batch_and_score.py", *argv).splitlines()
    assert out[0].startswith("4 jobs (4 prompts)") and "4 done" in out[0]
    assert [line.split(":")[0] for line in out[-5:]] == [
        "negation", "numeracy", "attribution", "spatial", "overall",
    ]  # fmt: skip


def test_local_llm_server_without_a_url_is_a_usage_error(monkeypatch):
    monkeypatch.delenv("LMD_LLM_BASE_URL", raising=False)
    assert "--llm-base-url" in _run("local_llm_server.py", *FAST, code=2)

"""`lmd plan` against the loopback server: text, --json, -o, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lmd.layouts import Layout

from lmd.cli import run

ROOT = Path(__file__).resolve().parents[1]
GOOD = (
    "Here you go:\n"
    "Objects: [('a black cat', [40, 200, 180, 200]), ('a cat', [300, 200, 260, 200])]\n"
    "Background prompt: A realistic photo of a sofa\n"
    "Negative prompt: dogs"
)


def test_plan_prints_the_template_format(llm_env, capsys):
    llm_env.enqueue(GOOD)
    assert run(["plan", "两只猫，一只是黑色的，没有狗"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "Objects: [('a black cat', [40, 200, 180, 200]), ('a cat', [300, 200, 212, 200])]",
        "Background prompt: A realistic photo of a sofa",
        "Negative prompt: dogs",
    ]
    assert "warning: clipped box 'a cat'" in err
    assert llm_env.messages[0][-1]["content"] == "Caption: 两只猫，一只是黑色的，没有狗"


def test_plan_json_prints_only_json_and_saves(llm_env, capsys, tmp_path):
    llm_env.enqueue(GOOD)
    target = tmp_path / "out" / "layout.json"
    assert run(["plan", "two cats", "--json", "-o", str(target)]) == 0
    out, err = capsys.readouterr()
    layout = Layout.from_json(out)
    assert layout.names == ["a black cat", "a cat"]
    assert Layout.from_json(target.read_text()) == layout
    assert f"saved {target}" in err


def test_plan_text_mode_says_where_it_saved(llm_env, capsys, tmp_path):
    llm_env.enqueue(GOOD)
    assert run(["plan", "two cats", "-o", str(tmp_path / "l.json")]) == 0
    assert f"saved {tmp_path / 'l.json'}" in capsys.readouterr().out


def test_plan_replays_from_cache_and_no_cache_asks_again(llm_env, capsys):
    llm_env.enqueue(GOOD, GOOD.replace("dogs", "birds"))
    run(["plan", "two cats"])
    first, err = capsys.readouterr()
    assert err.startswith(f"asking openai/test-model at {llm_env.url} ...\n")  # first
    assert run(["plan", "two cats"]) == 0
    out, err = capsys.readouterr()
    assert out == first and err.startswith(
        f"openai/test-model at {llm_env.url}: a cached reply, nothing asked "
        "(--no-cache asks again)\n"
    )
    assert len(llm_env.requests) == 1
    assert run(["plan", "two cats", "--no-cache"]) == 0
    assert "Negative prompt: birds" in capsys.readouterr().out
    assert len(llm_env.requests) == 2


def test_options_override_the_environment(llm_server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LMD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("LMD_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    llm_server.enqueue(GOOD)
    argv = ["plan", "cats", "--llm", "openai/mine", "--llm-base-url", llm_server.url]
    assert run(argv) == 0
    assert llm_server.requests[0]["model"] == "mine"


def test_errors_are_one_line(llm_env, monkeypatch, capsys):
    monkeypatch.setenv("LMD_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert run(["plan", "a cat", "--llm-retries", "0"]) == 1
    out, err = capsys.readouterr()
    asking, error = err.splitlines()
    assert asking == "asking openai/test-model at http://127.0.0.1:9/v1 ..."
    assert out == "" and error.startswith("error: could not reach the LLM at http://127.0.0.1:9/v1")
    assert err.count("\n") == 2  # the request, then what became of it

    assert run(["plan", "a cat", "--llm-base-url", "localhost:8000"]) == 1
    assert capsys.readouterr().err.startswith("error: the LLM base URL must be an http(s) URL")

    monkeypatch.delenv("LMD_LLM_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert run(["plan", "a cat", "--llm", "gpt-4.1-mini"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: no API key for openai: set OPENAI_API_KEY or use --llm-base-url "
        "(or $LMD_LLM_BASE_URL) for a server that needs none\n"
    )


def test_the_python_api_names_its_own_arguments(monkeypatch):
    from lmd.prompts import Planner
    from lmd.prompts.errors import LLMUnavailableError

    monkeypatch.delenv("LMD_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMUnavailableError) as info:
        Planner(model="gpt-4.1-mini", cache=False).plan("a cat")
    assert "`llm_base_url`" in str(info.value) and "--" not in str(info.value)


def test_ollama_needs_no_key(llm_env, monkeypatch, capsys):
    for var in ("LMD_LLM_BASE_URL", "OPENAI_API_KEY", "OLLAMA_API_BASE", "OLLAMA_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    argv = ["plan", "a cat", "--llm", "ollama/llama3.1", "--llm-retries", "0", "--no-cache"]
    assert run(argv) == 1  # no Ollama runs here: it gets as far as trying localhost:11434
    err = capsys.readouterr().err
    assert err.splitlines()[1].startswith(
        "error: could not reach the LLM ollama/llama3.1 (1 try): connection"
    ), err
    assert "key" not in err


def test_garbage_forever_is_one_line_naming_the_attempts(llm_env, capsys):
    llm_env.default = "I cannot draw."
    assert run(["plan", "a cat"]) == 1
    err = capsys.readouterr().err
    asking = [line for line in err.splitlines() if line.startswith("asking ")]
    assert len(asking) == 3 and asking[1].startswith(
        f"asking openai/test-model at {llm_env.url} again (its answer was no layout: no 'Back"
    )
    assert err.splitlines()[-1].startswith(
        "error: openai/test-model answered 3 times but never with a layout"
    )
    assert "end the answer" not in err  # the advice to the LLM is not for the user


def test_python_dash_m_lmd_plan_json(llm_env, tmp_path):
    llm_env.enqueue(GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "lmd", "plan", "two cats", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["background"] == "A realistic photo of a sofa"
    assert "Traceback" not in proc.stderr

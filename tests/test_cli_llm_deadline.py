"""`--llm-timeout` and retry notices on the command line; `llm_timeout=` in Python."""

import time

import pytest

from lmd.cli import run
from tests.fixtures_llm import SILENT

GOOD = "Objects: [('a cat', [40, 200, 160, 160])]\nBackground prompt: a park"


def test_each_retry_is_a_note_line_on_stderr(llm_env, capsys, warm_litellm):
    llm_env.enqueue(503, GOOD)
    assert run(["plan", "a cat", "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Objects: [('a cat'")
    assert err.splitlines() == [
        f"asking openai/test-model at {llm_env.url} ...",
        f"note: the LLM at {llm_env.url} failed (scripted HTTP 503); retry 1 of 4 in 1.0 s",
    ]


def test_a_silent_server_ends_at_the_llm_timeout_in_one_line(llm_env, capsys, warm_litellm):
    llm_env.default = SILENT
    start = time.monotonic()
    assert run(["plan", "a cat", "--no-cache", "--llm-timeout", "1.5"]) == 1
    assert time.monotonic() - start < 1.5 + 3.0
    assert capsys.readouterr().err == (
        f"asking openai/test-model at {llm_env.url} ...\n"
        f"error: no answer from the LLM at {llm_env.url} within the 1.5 s deadline (1 try); "
        "last error: no complete answer within 1.5 s\n"
    )


def test_generate_takes_llm_timeout_and_checks_it_before_asking(llm_env):
    from lmd import generate

    with pytest.raises(ValueError, match="`llm_timeout`"):
        generate("a cat", llm_timeout=0)
    assert llm_env.requests == []


def test_lmd_batch_plans_under_the_llm_timeout_and_lmd_web_takes_it(
    llm_env, capsys, warm_litellm, tmp_path
):
    llm_env.default = SILENT
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    start = time.monotonic()
    argv = ["batch", str(prompts), "-o", str(tmp_path / "out"), "--model", "random:tiny"]
    assert run([*argv, "--no-cache", "--llm-timeout", "1.5"]) == 1
    assert time.monotonic() - start < 1.5 + 5.0
    assert "within the 1.5 s deadline" in capsys.readouterr().err
    assert run(["web", "--help"]) == 0
    assert "--llm-timeout" in capsys.readouterr().out

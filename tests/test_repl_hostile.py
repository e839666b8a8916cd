"""The chat survives anything an LLM sends: each hostile reply is one `error:` line, the
session is unchanged, and the next request works. In process (the real planner against the
loopback server, the sketch renderer) and, marked slow, as `lmd chat` on random:tiny."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lmd.conversation import Conversation, run_repl

from tests.fixtures_llm import SILENT, Status, Trickle
from tests.sketch_renderer import SketchRenderer

ROOT = Path(__file__).resolve().parents[1]
GOOD = (
    "Objects: [('a cat', [40, 200, 160, 160]), ('a dog', [300, 190, 170, 180])]\n"
    "Background prompt: a park\nNegative prompt: birds"
)
MOVED = GOOD.replace("[300, 190", "[220, 190")
TEMPLATE = "Objects: [('a cat', [{x}, 200, 160, {h}])]\nBackground prompt: {b}"
# What the reliability probe sent: each is unreadable however often it is asked again.
HOSTILE_REPLIES = {
    "huge integer": TEMPLATE.format(x="9" * 5000, h=160, b="a park"),
    "huge float": TEMPLATE.format(x="1" + "0" * 400 + ".0", h=160, b="a park"),
    "deep nesting": "Objects: " + "[" * 50_000 + "\nBackground prompt: a park",
    "deep JSON": '{"boxes": ' + "[" * 50_000 + "]" * 50_000 + ', "background": "a park"}',
    "NaN width": '{"boxes": [{"name": "a cat", "box": [0, 0, NaN, 9]}], "background": "x"}',
    "Infinity": '{"boxes": [{"name": "a cat", "box": [0, 0, Infinity, 9]}], "background": "x"}',
    "lone surrogate": "Objects: [('a \ud800 cat', [40, 200, 160, 160])]\nBackground prompt: x",
    "x = 1e308": TEMPLATE.format(x="1e308", h=160, b="a park"),
    "background of spaces": TEMPLATE.format(x=40, h=160, b="\u2003 \u3000 "),
    "name of punctuation": "Objects: [('?!', [40, 200, 160, 160])]\nBackground prompt: x",
    "typo in a key": '{"boxs": [{"name": "a cat", "box": [0, 0, 9, 9]}], "background": "x"}',
    "5 MB of junk": "Objects: [" + "x" * 5_000_000,
    "200 KB of padding": GOOD.replace("\n", " " * 200_000 + "\n", 1),
    "empty": "",
}
TRANSPORT = {  # answered with an error or not at all, until the deadline
    "HTTP 500 forever": 500,
    "429 past the deadline": Status(429, {"Retry-After": "60"}),
    "trickling": Trickle(GOOD, interval=0.3),
    "silent": SILENT,
}


def test_each_hostile_reply_is_one_error_line_and_the_session_is_unchanged(
    tmp_path, llm_server, make_planner, warm_litellm
):
    planner = make_planner(max_retries=2, retry_wait=0.01, llm_timeout=0.8, timeout=5)
    session = tmp_path / "session.json"
    c = Conversation(planner, SketchRenderer(), session_path=session, out_dir=tmp_path, seed=1)
    llm_server.enqueue(GOOD)
    code, out, err = _run(c, "a cat and a dog in a park\n")
    assert code == 0 and "turn 1:" in out and err == ""
    kinds = {**HOSTILE_REPLIES, **TRANSPORT}
    for number, (name, reply) in enumerate(kinds.items(), start=2):
        before, pictures = session.read_bytes(), sorted(tmp_path.glob("turn-*.png"))
        if name in TRANSPORT:
            llm_server.default = reply
        else:
            llm_server.enqueue(reply, reply, reply)  # the answer and both repairs
        code, out, err = _run(c, f"move the dog left ({name})\n")
        errors = err.splitlines()
        assert code == 1 and out == "", name  # the last (only) request failed
        assert len(errors) == 1 and errors[0].startswith("error: "), (name, errors)
        assert len(errors[0]) < 700, name
        assert session.read_bytes() == before, name
        assert sorted(tmp_path.glob("turn-*.png")) == pictures, name
        llm_server.default = None
        llm_server.queue.clear()
        llm_server.enqueue(MOVED if number % 2 else GOOD)
        code, out, err = _run(c, "move the dog\n")
        assert code == 0 and err == "" and f"turn {number}:" in out, (name, err)
    saved = json.loads(session.read_text(encoding="utf-8"))
    assert len(saved["turns"]) == 1 + len(kinds)
    assert all(t["request"] != "" and "(" not in t["request"] for t in saved["turns"])


def _run(conversation: Conversation, text: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_repl(conversation, io.StringIO(text), out, err)
    return code, out.getvalue(), err.getvalue()


def test_the_repl_says_each_retry_of_the_llm(tmp_path, llm_server, make_planner):
    llm_server.enqueue(503, GOOD)
    c = Conversation(make_planner(retry_wait=0.01), SketchRenderer(), seed=1)
    code, out, err = _run(c, "a cat and a dog\n")
    assert code == 0 and "turn 1:" in out
    assert err == (
        f"note: the LLM at {llm_server.url} failed (scripted HTTP 503); retry 1 of 4 in 0.0 s\n"
    )


def test_warnings_of_a_readable_reply_are_one_line_each(tmp_path, llm_server, make_planner):
    llm_server.enqueue(
        "Objects: [('一只猫', [400, 200, 300, 160]), ('a dog.', [30, 190, 170, 180])]\n"
        "Background prompt: a park"
    )
    c = Conversation(make_planner(), SketchRenderer(), seed=1)
    code, out, err = _run(c, "一只猫和一只狗\n")
    assert code == 0 and "turn 1:" in out
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines)
    assert "English best" in err and "clipped box '一只猫'" in err
    assert c.current.layout.names == ["一只猫", "a dog"]


@pytest.mark.slow
def test_lmd_chat_never_exits_before_quit_whatever_the_llm_sends(tmp_path, llm_env):
    """The done-when of issue 10: `lmd chat` on random:tiny against a scripted server that
    sends each kind of hostile reply in turn, each followed by a request that works."""
    script: list[tuple[str, list]] = [("a cat and a dog in a park", [GOOD])]
    kinds = {name: [reply] * 3 for name, reply in HOSTILE_REPLIES.items()}  # answer + 2 repairs
    kinds |= {"HTTP 500 forever": [500] * 3, "trickling": [Trickle(GOOD, 1.0)], "silent": [SILENT]}
    for i, (name, replies) in enumerate(kinds.items()):
        script += [(f"hostile: {name}", replies), ("move the dog", [MOVED if i % 2 else GOOD])]
    script.append(("after a rate limit", [Status(429, {"Retry-After": "1"}), MOVED]))
    for _, replies in script:
        llm_env.enqueue(*replies)
    session = tmp_path / "session.json"
    command = [
        sys.executable, "-m", "lmd", "chat", "--session", str(session), "-o", str(tmp_path),
        "--model", "random:tiny", "--steps", "2", "--no-sam", "--device", "cpu",
        "--height", "64", "--width", "64", "--llm-timeout", "15", "--llm-retries", "2",
    ]  # fmt: skip
    stdin = "\n".join([*(text for text, _ in script), "/quit", "never read"]) + "\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        command, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(kinds), errors
    assert any(line.startswith("note: the LLM at") for line in proc.stderr.splitlines())
    good = [text for text, _ in script if not text.startswith("hostile: ")]
    assert f"turn {len(good)}:" in proc.stdout
    saved = json.loads(session.read_text(encoding="utf-8"))
    assert [t["request"] for t in saved["turns"]] == good
    assert len(llm_env.requests) == sum(len(r) for _, r in script)  # nothing after /quit


def test_a_picture_that_cannot_be_written_is_one_error_line_and_the_chat_goes_on(tmp_path):
    from tests.scripted_planner import CAT_DOG, ScriptedPlanner

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # the output folder is a file: every picture fails to save
    c = Conversation(ScriptedPlanner(CAT_DOG, CAT_DOG), SketchRenderer(), out_dir=blocked, seed=1)
    code, out, err = _run(c, "a cat and a dog\n/layout\n")
    assert code == 0 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert out == "no layout yet\n" and c.turns == []

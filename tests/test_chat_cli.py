"""`lmd chat` sessions and folders, settings kept across resumes, and honest exit codes.

The CLI's own logic is under test: the real planner talks to the loopback LLM server and the
pictures come from the torch-free `SketchRenderer` in place of the diffusion models.
"""

from __future__ import annotations

import io
import json

import pytest

from lmd.cli import run
from lmd.cli.chat import REDRAWN
from tests.sketch_renderer import SketchRenderer

CAT_DOG = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
DOG_UP = CAT_DOG.replace("[280, 240,", "[280, 40,")
TINY = ["--model", "random:tiny", "--steps", "4"]


class SketchModels:
    """Stands where `lmd chat` loads the diffusion models; records the settings it was given."""

    made: list = []

    def __init__(self, settings):
        self.settings = settings
        self.loads = 0
        self.sketch = SketchRenderer()
        SketchModels.made.append(self)

    def load(self) -> None:
        self.loads += 1

    def __call__(self, request):
        return self.sketch(request)


@pytest.fixture
def chat(llm_env, monkeypatch, capsys):
    SketchModels.made = []
    monkeypatch.setattr("lmd.cli.chat.LazyRenderer", SketchModels)

    def chat(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = run(["chat", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return chat


def test_resuming_without_o_writes_into_the_sessions_folder(chat, llm_env, tmp_path, monkeypatch):
    garden = tmp_path / "garden"
    llm_env.enqueue(CAT_DOG, DOG_UP)
    assert chat("-o", str(garden), *TINY, stdin="a cat and a dog\n")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = chat("--session", str(garden / "session.json"), stdin="move the dog up\n")
    assert code == 0, err
    assert f"turn 2: {garden / 'turn-002.png'}" in out
    assert (garden / "turn-002.png").is_file() and list(elsewhere.iterdir()) == []
    assert (garden / "turn-002.layout.png").is_file()  # the boxes over each turn's picture


def test_a_new_session_never_overwrites_another_sessions_pictures(chat, llm_env, tmp_path):
    shared = tmp_path / "shared"
    llm_env.enqueue(CAT_DOG)
    assert chat("-o", str(shared), *TINY, stdin="a cat and a dog\n")[0] == 0
    before = (shared / "turn-001.png").read_bytes()
    code, out, err = chat("-o", str(shared), "--session", str(tmp_path / "other.json"), *TINY,
                          stdin="a cat and a dog\n")  # fmt: skip
    assert code == 1 and out == ""
    assert err.startswith(f"error: {shared} already holds turn-001.png from another session")
    assert "-o" in err and "Traceback" not in err
    assert (shared / "turn-001.png").read_bytes() == before
    assert not (tmp_path / "other.json").exists()
    assert len(llm_env.requests) == 1  # refused before the LLM was asked


def test_session_saved_only_when_something_was_saved(chat, tmp_path):
    code, out, err = chat("-o", str(tmp_path / "c"), *TINY, stdin="/help\n/layout\n")
    assert code == 0 and "no layout yet" in out
    assert "session saved" not in err and "nothing drawn, so no session was saved" in err
    assert not (tmp_path / "c" / "session.json").exists()


def test_a_new_session_gets_a_one_line_welcome(chat, tmp_path):
    _, _, err = chat("-o", str(tmp_path / "c"), "--seed", "5", *TINY, stdin="")
    assert err.splitlines()[0] == (
        f"new session {tmp_path / 'c' / 'session.json'} (seed 5): say what to draw; "
        "/help for commands"
    )


def test_a_resumed_session_keeps_its_settings_unless_a_flag_overrides_one(chat, llm_env, tmp_path):
    folder = tmp_path / "c"
    llm_env.enqueue(CAT_DOG, DOG_UP, CAT_DOG)
    assert chat("-o", str(folder), *TINY, "--height", "256", stdin="a cat and a dog\n")[0] == 0
    saved = json.loads((folder / "session.json").read_text())["meta"]
    assert saved == {"model": "random:tiny", "method": "lmd", "steps": 4, "height": 256,
                     "width": None, "llm": "openai/test-model",
                     "llm_base_url": llm_env.url}  # fmt: skip
    session = ["--session", str(folder / "session.json")]
    code, _, err = chat(*session, stdin="move the dog up\n")
    assert code == 0, err
    kept = SketchModels.made[-1].settings
    assert (kept.model, kept.steps, kept.height) == ("random:tiny", 4, 256)
    assert [line for line in err.splitlines() if line.startswith("note:")] == [REDRAWN]
    code, _, err = chat(*session, "--steps", "8", "--model", "random:tiny", stdin="a\n")
    changed = SketchModels.made[-1].settings
    assert (changed.model, changed.steps, changed.height) == ("random:tiny", 8, 256)
    notes = [line for line in err.splitlines() if line.startswith("note:") and line != REDRAWN]
    assert len(notes) == 1 and notes[0].startswith("note: --steps 8 overrides the session's 4")
    assert json.loads((folder / "session.json").read_text())["meta"]["steps"] == 4


def test_a_resumed_session_talks_to_its_own_llm(chat, llm_env, tmp_path, monkeypatch):
    """Without --llm a resumed session asks the LLM it was started with, not the default (and
    never stores an API key)."""
    folder = tmp_path / "c"
    llm_env.enqueue(CAT_DOG, DOG_UP, DOG_UP)
    argv = ["--llm", "openai/session-model", "--llm-base-url", llm_env.url]
    assert chat("-o", str(folder), *TINY, *argv, stdin="a cat and a dog\n")[0] == 0
    monkeypatch.setenv("LMD_LLM", "gpt-4.1-mini")  # the default elsewhere: not this session's
    monkeypatch.setenv("LMD_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    session = ["--session", str(folder / "session.json")]
    code, _, err = chat(*session, stdin="move the dog up\n")
    assert code == 0, err
    assert [r["model"] for r in llm_env.requests] == ["session-model", "session-model"]
    assert f"LLM openai/session-model at {llm_env.url})" in err.splitlines()[0]
    assert err.splitlines()[1].startswith("note: the next picture draws every object again")
    assert "sk-" not in (folder / "session.json").read_text()
    code, _, err = chat(*session, "--llm", "openai/other", stdin="move the dog up\n")
    assert code == 0 and llm_env.requests[-1]["model"] == "other"
    assert "note: --llm openai/other overrides the session's openai/session-model" in err


def test_models_load_before_the_llm_is_asked(chat, llm_env, tmp_path):
    llm_env.enqueue(CAT_DOG)
    chat("-o", str(tmp_path / "c"), *TINY, stdin="/help\na cat and a dog\n")
    assert SketchModels.made[-1].loads == 1 and len(llm_env.requests) == 1


def test_a_bad_model_fails_before_any_llm_call(chat, llm_env, tmp_path):
    code, out, err = chat("-o", str(tmp_path / "c"), "--model", "foo/bar", stdin="a cat\na dog\n")
    assert code == 1 and out == ""
    assert err == (
        "error: model 'foo/bar' is not in the local cache and the hub cannot be reached "
        "(HF_HUB_OFFLINE is set); pass a local diffusers folder as --model\n"
    )
    assert llm_env.requests == []


@pytest.mark.parametrize(
    ("replies", "code"),
    [
        ([500, 500], 1),  # every request failed
        ([CAT_DOG, 500], 1),  # the last one failed
        ([500, CAT_DOG], 0),  # a failure, then a picture
    ],
)
def test_a_piped_chat_exits_non_zero_when_its_last_request_failed(
    chat, llm_env, tmp_path, replies, code
):
    llm_env.enqueue(*replies)
    got, _, err = chat("-o", str(tmp_path / "c"), *TINY, "--llm-retries", "0",
                       stdin="a cat and a dog\na cat and a dog\n")  # fmt: skip
    assert got == code, err
    assert err.count("error: ") == replies.count(500)

"""The chat REPL as transcripts: lines in, lines out, and the saved session."""

from __future__ import annotations

import io
import json

from lmd.conversation import Conversation, run_repl
from lmd.layouts import parse

from tests.scripted_planner import (
    CAT_DOG,
    DOG_LEFT,
    WITH_HAT,
    ScriptedPlanner,
    ScriptedPlannerError,
    reply,
)
from tests.sketch_renderer import SketchRenderer


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def session(tmp_path, *replies, **options) -> Conversation:
    return Conversation(
        ScriptedPlanner(*replies),
        SketchRenderer(),
        session_path=tmp_path / "session.json",
        out_dir=tmp_path / "out",
        seed=42,
        **options,
    )


def transcript(conversation: Conversation, text: str, stdin=io.StringIO) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_repl(conversation, stdin(text), out, err)
    return code, out.getvalue(), err.getvalue()


def test_two_turns_undo_layout_quit(tmp_path):
    c = session(tmp_path, CAT_DOG, DOG_LEFT)
    code, out, err = transcript(
        c, "a cat and a dog\nmove the dog left\n/undo\n/layout\n/quit\nnever read\n"
    )
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"turn 1: {tmp_path / 'out' / 'turn-001.png'}",
        "2 objects: a cat, a dog; background: a park (2 drawn, 0 reused)",
        f"turn 2: {tmp_path / 'out' / 'turn-002.png'}",
        'moved "a dog" (0 drawn, 2 reused)',
        f"turn 1: {tmp_path / 'out' / 'turn-001.png'}",
        "2 objects: a cat, a dog; background: a park (2 drawn, 0 reused)",
        "Objects: [('a cat', [40, 200, 160, 160]), ('a dog', [300, 190, 170, 180])]",
        "Background prompt: a park",
        "Negative prompt: ",
    ]
    saved = json.loads((tmp_path / "session.json").read_text(encoding="utf-8"))
    assert saved["cursor"] == 0
    assert [t["request"] for t in saved["turns"]] == ["a cat and a dog", "move the dog left"]
    assert [t["summary"] for t in saved["turns"]] == [
        "2 objects: a cat, a dog; background: a park",
        'moved "a dog"',
    ]
    assert saved["turns"][1]["layout"]["boxes"][1]["x"] == 220.0


def test_failures_print_one_line_and_leave_the_session_as_it_was(tmp_path):
    c = session(
        tmp_path,
        CAT_DOG,
        ScriptedPlannerError("the LLM did not answer after 3 attempts"),
        "I'm sorry, I can't\ndo that",
        DOG_LEFT,
    )
    code, out, err = transcript(c, "a cat and a dog\nmove it\nmove it\nmove the dog left\n")
    assert code == 0
    errors = err.splitlines()
    assert errors[0] == "error: the LLM did not answer after 3 attempts"
    assert len(errors) == 2 and errors[1].startswith("error: ")
    assert "turn 2:" in out and 'moved "a dog"' in out
    saved = json.loads((tmp_path / "session.json").read_text(encoding="utf-8"))
    assert [t["request"] for t in saved["turns"]] == ["a cat and a dog", "move the dog left"]


def test_unicode_requests_flow_through_and_are_saved(tmp_path):
    c = session(tmp_path, CAT_DOG, WITH_HAT)
    code, out, err = transcript(c, "eine Katze und ein Hund\n给猫戴一顶帽子\n")
    assert code == 0 and err == ""
    assert 'added "a hat"' in out
    text = (tmp_path / "session.json").read_text(encoding="utf-8")
    assert "给猫戴一顶帽子" in text
    assert [t["request"] for t in json.loads(text)["turns"]] == [
        "eine Katze und ein Hund",
        "给猫戴一顶帽子",
    ]


def test_commands_redo_new_save_help_and_unknown(tmp_path):
    c = session(tmp_path, CAT_DOG, DOG_LEFT)
    copy = tmp_path / "copy.json"
    code, out, err = transcript(
        c,
        f"/layout\n/undo\na cat and a dog\n/redo\nmove the dog left\n/undo\n/redo\n"
        f"/new\n/save {copy}\n/help\n/frobnicate\n",
    )
    assert code == 0  # EOF ends the loop like /quit
    lines = out.splitlines()
    assert lines[:2] == ["no layout yet", "nothing to undo"]
    assert "nothing to redo" in lines
    assert lines.count(f"turn 2: {tmp_path / 'out' / 'turn-002.png'}") == 2  # send, then redo
    assert f"turn 3: {tmp_path / 'out' / 'turn-003.png'}" in lines
    assert any(line.startswith("new background seed ") for line in lines)
    assert f"saved: {copy}" in lines
    assert any(line.lstrip().startswith("/undo") for line in lines)  # the help
    assert err == "unknown command /frobnicate; /help lists the commands\n"
    assert [t.request for t in c.turns] == ["a cat and a dog", "move the dog left", "/new"]
    assert json.loads(copy.read_text(encoding="utf-8"))["cursor"] == 2


def test_save_without_a_file_says_how(tmp_path):
    c = Conversation(ScriptedPlanner(CAT_DOG), SketchRenderer(), seed=1)
    code, out, err = transcript(c, "a cat and a dog\n/save\n")
    assert "(image not saved: no output folder)" in out
    assert err == "error: this session has no file yet: give a path to save it to\n"


def test_prompt_only_on_a_terminal_and_blank_lines_ignored(tmp_path):
    _, piped, _ = transcript(session(tmp_path / "a", CAT_DOG), "\n   \na cat and a dog\n")
    assert "lmd>" not in piped and piped.count("turn 1:") == 1
    _, typed, _ = transcript(session(tmp_path / "b", CAT_DOG), "a cat and a dog\n", Terminal)
    assert typed.startswith("lmd> turn 1:")
    assert typed.count("lmd> ") == 2 and typed.endswith("lmd> \n")


def test_the_repl_hands_its_progress_to_the_renderer(tmp_path):
    seen = []
    c = session(tmp_path, CAT_DOG)
    run_repl(
        c, io.StringIO("a cat and a dog\n"), io.StringIO(), io.StringIO(),
        progress=lambda label, step, total: seen.append((label, step, total)),
    )  # fmt: skip
    assert seen == [("a cat", 1, 2), ("a dog", 2, 2)]


def test_a_resumed_session_keeps_editing_where_it_left_off(tmp_path):
    first = session(tmp_path, CAT_DOG, DOG_LEFT)
    transcript(first, "a cat and a dog\nmove the dog left\n/undo\n/quit\n")
    first.close()
    planner = ScriptedPlanner(reply("('a cat', [40, 200, 160, 160])"))
    resumed = Conversation.load(tmp_path / "session.json", planner, SketchRenderer())
    code, out, err = transcript(resumed, "/layout\nremove the dog\n")
    assert out.splitlines()[0] == parse(CAT_DOG).to_llm_text().splitlines()[0]
    assert 'removed "a dog"' in out and err == ""
    users = [m["content"] for m in planner.calls[0] if m["role"] == "user"]
    assert users == ["a cat and a dog", "remove the dog"]


def test_save_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    c = session(tmp_path, CAT_DOG)
    code, out, err = transcript(c, "a cat and a dog\n/save ~/x.json\n")
    assert code == 0 and err == ""
    assert f"saved: {tmp_path / 'home' / 'x.json'}" in out
    assert json.loads((tmp_path / "home" / "x.json").read_text())["cursor"] == 0
    assert not (tmp_path / "~").exists()


def test_each_picture_gets_its_layout_drawn_over_it(tmp_path):
    from PIL import Image

    c = session(tmp_path, CAT_DOG, DOG_LEFT)
    transcript(c, "a cat and a dog\nmove the dog left\n/new\n")
    for n in (1, 2, 3):
        picture = Image.open(tmp_path / "out" / f"turn-00{n}.png")
        overlay = Image.open(tmp_path / "out" / f"turn-00{n}.layout.png")
        assert overlay.size == picture.size and overlay.tobytes() != picture.tobytes()


class Interrupting(io.StringIO):
    """A terminal whose user presses Ctrl-C after the lines given."""

    def isatty(self) -> bool:
        return True

    def readline(self, *args):
        line = super().readline(*args)
        if not line:
            raise KeyboardInterrupt
        return line


def test_exit_codes(tmp_path):
    assert transcript(session(tmp_path / "a", CAT_DOG), "a cat and a dog\n")[0] == 0
    failing = ScriptedPlannerError("no answer")
    assert transcript(session(tmp_path / "b", failing), "a cat and a dog\n")[0] == 1
    assert transcript(session(tmp_path / "c", CAT_DOG, failing), "a cat\nmove it\n/quit\n")[0] == 1
    assert transcript(session(tmp_path / "d", failing, CAT_DOG), "a cat\na cat\n")[0] == 0
    code, out, _ = transcript(session(tmp_path / "e", CAT_DOG), "a cat and a dog\n", Interrupting)
    assert code == 130 and "turn 1:" in out  # Ctrl-C at the prompt


def test_a_resumed_chat_draws_the_overlays_a_kill_left_undrawn(tmp_path):
    c = session(tmp_path, CAT_DOG, DOG_LEFT)
    transcript(c, "a cat and a dog\nmove the dog left\n")
    c.close()
    out = tmp_path / "out"
    drawn = (out / "turn-002.layout.png").read_bytes()
    (out / "turn-002.layout.png").unlink()  # killed after the turn was saved, before this
    resumed = Conversation.load(tmp_path / "session.json", ScriptedPlanner(), SketchRenderer())
    assert transcript(resumed, "/quit\n")[0] == 0
    assert (out / "turn-002.layout.png").read_bytes() == drawn

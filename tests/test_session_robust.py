"""Session files that are bad, shared or long: one clear line, the file untouched, one writer
at a time, and no picture kept in memory that is already on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lmd.conversation import Conversation, Session, SessionError
from lmd.conversation.lock import SessionLock, lock_path

from tests.scripted_planner import CAT_DOG, DOG_LEFT, ONLY_CAT, ScriptedPlanner
from tests.sketch_renderer import SketchRenderer

ROOT = Path(__file__).resolve().parents[1]


def one_turn_session(path: Path, out_dir: Path | None = None) -> bytes:
    """A saved one-turn session at `path` (closed again); returns the file's bytes."""
    with Conversation(
        ScriptedPlanner(CAT_DOG), SketchRenderer(), session_path=path, out_dir=out_dir, seed=7
    ) as c:
        c.send("a cat and a dog")
    return path.read_bytes()


# --- bad session files -------------------------------------------------------------------
def _valid(tmp_path) -> dict:
    path = tmp_path / "good.json"
    one_turn_session(path)
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: "[" * 100_000 + "]" * 100_000, "nests too deeply"),
        (lambda d: json.dumps({**d, "meta": {"x": _nested(20) * 5}}), None),
        (lambda d: json.dumps({**d, "meta": {"a": _nested(500)}}), "nests more than 64 levels"),
        (lambda d: json.dumps(d).replace('"seed": 7', '"seed": ' + "7" * 5000), "5000 digits"),
        (lambda d: json.dumps({**d, "seed": 2**63}), "seed: Input should be less than"),
        (lambda d: json.dumps(d).replace('"request": "a cat', '"request": "\\ud800'), "surrogate"),
        (lambda d: json.dumps(d)[:-10], "not valid JSON"),
        (lambda d: json.dumps({**d, "cursor": 5}), "cursor 5 is outside"),
    ],
    ids=["deep", "fine-meta", "deep-meta", "long-seed", "big-seed", "surrogate", "cut", "cursor"],
)
def test_a_bad_session_file_is_one_line_naming_it_and_stays_untouched(tmp_path, make, says):
    path = tmp_path / "session.json"
    path.write_text(make(_valid(tmp_path)), encoding="utf-8")
    before = path.read_bytes()
    if says is None:
        assert Session.load(path).meta["x"]  # a little nesting is fine
        return
    with pytest.raises(SessionError) as info:
        Conversation.load(path, ScriptedPlanner(), SketchRenderer())
    message = str(info.value)
    assert str(path) in message and says in message
    assert "set_int_max_str_digits" not in message  # our words, not the interpreter's
    assert "\n" not in message and len(message) < 400 + len(str(path))
    assert path.read_bytes() == before
    SessionLock(path).acquire().release()  # the failed load let go of the lock


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_an_oversized_session_file_is_refused_unread(tmp_path, monkeypatch):
    import lmd.conversation.session as session_module

    path = tmp_path / "session.json"
    one_turn_session(path)
    monkeypatch.setattr(session_module, "MAX_SESSION_BYTES", 100)
    with pytest.raises(SessionError, match=r"session\.json is 0 MB, more than the 0 MB"):
        Session.load(path)


# --- Conversation.load -------------------------------------------------------------------
def test_load_without_out_dir_writes_beside_the_session_file(tmp_path):
    path = tmp_path / "chats" / "session.json"
    one_turn_session(path, out_dir=tmp_path / "pictures")
    data = json.loads(path.read_text())
    data["turns"][0]["image_path"] = str(tmp_path / "elsewhere" / "turn-001.png")  # edited
    path.write_text(json.dumps(data))
    with Conversation.load(path, ScriptedPlanner(DOG_LEFT), SketchRenderer()) as c:
        assert c.out_dir == path.parent
        turn = c.send("move the dog left")
    assert turn.image_path == str(path.parent / "turn-002.png")
    assert not (tmp_path / "elsewhere").exists()


# --- one writer at a time ----------------------------------------------------------------
def test_a_second_conversation_on_one_file_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "session.json"
    before = one_turn_session(path)
    first = Conversation.load(path, ScriptedPlanner(DOG_LEFT), SketchRenderer())
    with pytest.raises(SessionError, match="in use by another lmd chat"):
        Conversation.load(path, ScriptedPlanner(ONLY_CAT), SketchRenderer())
    with pytest.raises(SessionError, match="in use"):
        Conversation.open(path, ScriptedPlanner(), SketchRenderer())
    assert path.read_bytes() == before
    first.send("move the dog left")
    first.close()
    with Conversation.load(path, ScriptedPlanner(), SketchRenderer()) as second:
        assert [t.request for t in second.turns] == ["a cat and a dog", "move the dog left"]
        with pytest.raises(SessionError, match="in use"):
            first.undo()  # a closed conversation takes the lock again before it writes
    assert lock_path(path).name == ".session.json.lock"


def test_a_closed_conversation_is_refused_before_it_asks_or_writes_a_picture(tmp_path):
    path = tmp_path / "session.json"
    one_turn_session(path, out_dir=tmp_path)
    planner = ScriptedPlanner(DOG_LEFT)
    first = Conversation.load(path, planner, SketchRenderer(), out_dir=tmp_path)
    first.close()
    with Conversation.load(path, ScriptedPlanner(DOG_LEFT), SketchRenderer()) as second:
        second.send("move the dog left")
        drawn = (tmp_path / "turn-002.png").read_bytes()
        layout = first.current.layout
        for use in (lambda: first.send("move the dog left"), lambda: first.edit(layout),
                    lambda: first.save()):  # fmt: skip
            with pytest.raises(SessionError, match="in use"):
                use()
        assert planner.calls == []  # refused before the LLM was asked
        assert (tmp_path / "turn-002.png").read_bytes() == drawn  # the other chat's picture
        assert not (tmp_path / "turn-003.png").exists()


HOLDER = """
import sys
from lmd.conversation import Conversation
from tests.scripted_planner import ScriptedPlanner
from tests.sketch_renderer import SketchRenderer
c = Conversation.load(sys.argv[1], ScriptedPlanner(), SketchRenderer())
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(os.name != "posix", reason="kill -9 is POSIX")
def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path):
    path = tmp_path / "session.json"
    before = one_turn_session(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "holding\n"
        with pytest.raises(SessionError, match="in use"):
            Conversation.load(path, ScriptedPlanner(), SketchRenderer())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    with Conversation.load(path, ScriptedPlanner(), SketchRenderer()) as c:  # kill -9 freed it
        assert len(c.turns) == 1
    assert path.read_bytes() == before


@pytest.mark.slow
def test_two_lmd_chat_processes_on_one_session(tmp_path, llm_env):
    path = tmp_path / "session.json"
    before = one_turn_session(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lmd", "chat", "--session", str(path), "-o", str(tmp_path),
               "--model", "random:tiny", "--no-sam", "--device", "cpu"]  # fmt: skip
    first = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert first.stderr.readline().startswith(f"resumed {path}")
        second = subprocess.run(
            command, cwd=ROOT, env=env, input="move the dog left\n/quit\n",
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"error: session file {path} is in use by another lmd chat (or an open "
            "Conversation); finish that one first, or use another session file"
        ]
        assert llm_env.requests == []  # refused before asking anything
        out, _ = first.communicate("/quit\n", timeout=60)
        assert first.returncode == 0
    finally:
        first.kill()
    assert path.read_bytes() == before


# --- memory over a long chat -------------------------------------------------------------
def test_turns_with_a_picture_on_disk_do_not_keep_it_in_memory(tmp_path):
    replies = [CAT_DOG, DOG_LEFT, CAT_DOG, DOG_LEFT]
    c = Conversation(
        ScriptedPlanner(*replies), SketchRenderer(), session_path=tmp_path / "s.json",
        out_dir=tmp_path / "out", seed=1,
    )  # fmt: skip
    turns = [c.send(f"request {i}") for i in range(len(replies))]
    assert all(t._image is None for t in c.session.turns)
    assert turns[-1].image.size == (512, 512)  # read from its file when asked
    assert turns[-1]._image is None  # and not kept
    no_disk = Conversation(ScriptedPlanner(CAT_DOG), SketchRenderer(), seed=1)
    assert no_disk.send("a cat").image is not None  # without a file, memory is all there is
    c.close()

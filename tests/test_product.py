"""The product end to end: the real litellm client against a loopback LLM server, the real
controller on tiny random models. `generate()`, `lmd generate`, `lmd chat` and `lmd bench edit`.
"""

from __future__ import annotations

import io
import json

import pytest
from lmd.conversation import Conversation
from lmd.layouts import Layout
from PIL import Image

from lmd.api import Renderer, RenderError, RenderSettings, generate
from lmd.cli import run

CAT_DOG = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
DOG_MOVED = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 40, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
CAT_BLACK = (
    "Objects: [('a black cat', [40, 260, 160, 160]), ('a brown dog', [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
TINY = ["--model", "random:tiny", "--steps", "4", "--sam", "random:tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def renderer():
    """One tiny LMD renderer (models loaded once for the module); each test clears its cache."""
    return Renderer(
        RenderSettings(model="random:tiny", steps=4, sam_model="random:tiny", device="cpu")
    )


@pytest.fixture
def fresh(renderer):
    renderer.cache.clear()
    return renderer


def test_generate_plans_and_renders_and_saves(make_planner, llm_server, fresh, tmp_path):
    llm_server.enqueue(CAT_DOG)
    result = generate(
        "a cat to the left of a dog", seed=3, out_dir=tmp_path, planner=make_planner(),
        renderer=fresh,
    )  # fmt: skip
    assert result.layout.names == ["a grey cat", "a brown dog"]
    assert result.reply == CAT_DOG
    assert result.image.size == (128, 128)  # random:tiny's native size
    assert result.render.generated == 2
    assert Layout.from_json((tmp_path / "layout.json").read_text()) == result.layout
    assert Image.open(tmp_path / "image.png").tobytes() == result.image.tobytes()
    assert Image.open(tmp_path / "layout.png").size == (128, 128)
    assert llm_server.messages[0][-1]["content"].endswith("a cat to the left of a dog")


def test_generate_rejects_unknown_options():
    with pytest.raises(TypeError, match="stepz"):
        generate("a cat", stepz=3)


def test_lmd_generate_cli_writes_the_three_files(llm_env, capsys, tmp_path):
    llm_env.enqueue(CAT_DOG)
    out_dir = tmp_path / "out"
    assert run(["generate", "a cat and a dog", "-o", str(out_dir), *TINY, "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Objects: [('a grey cat', [40, 260, 160, 160])")
    for name in ("image.png", "layout.json", "layout.png"):
        assert f"wrote {out_dir / name}" in out
        assert (out_dir / name).stat().st_size > 0


def test_lmd_generate_cli_bad_method_is_one_line(llm_env, capsys, tmp_path):
    assert run(["generate", "a cat", "-o", str(tmp_path), "--method", "dalle"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: --method must be one of lmd, lmd+, sd, attnmod, migc, migc++ but is 'dalle'"
    )


def test_a_move_reuses_every_object_and_a_recolour_redraws_one(
    make_planner, llm_server, fresh, tmp_path
):
    llm_server.enqueue(CAT_DOG, DOG_MOVED, CAT_BLACK)
    chat = Conversation(make_planner(), fresh, session_path=tmp_path / "s.json", seed=5)
    first = chat.send("a cat and a dog")
    assert (first.generated, first.reused) == (2, 0)
    moved = chat.send("move the dog up")
    assert (moved.generated, moved.reused) == (0, 2)  # same sizes and seeds: all cached
    assert moved.object_seeds == first.object_seeds
    recoloured = chat.send("make the cat black")
    assert (recoloured.generated, recoloured.reused) == (1, 1)
    assert recoloured.object_ids == first.object_ids  # renamed in place: same identity


def _chat(argv, stdin_text, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin_text))
    code = run(["chat", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_lmd_chat_transcript_then_resume(llm_env, monkeypatch, capsys, tmp_path):
    out_dir = tmp_path / "chat"
    llm_env.enqueue(CAT_DOG, DOG_MOVED)
    code, out, err = _chat(
        ["-o", str(out_dir), "--seed", "7", *TINY],
        "a cat and a dog\nmove the dog up\n/undo\n/layout\n/quit\n",
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"turn 1: {out_dir / 'turn-001.png'}"
    assert "a grey cat" in lines[1] and "a brown dog" in lines[1]
    assert lines[2] == f"turn 2: {out_dir / 'turn-002.png'}"
    assert 'moved "a brown dog"' in lines[3]
    assert "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 240," in out
    session = json.loads((out_dir / "session.json").read_text())
    assert len(session["turns"]) == 2
    assert session["cursor"] == 0  # undone back to the first picture
    assert session["turns"][1]["request"] == "move the dog up"
    assert f"session saved in {out_dir / 'session.json'}" in err

    # Later: resume; the next edit starts from the undone-to turn with everything kept.
    llm_env.enqueue(CAT_BLACK)
    code, out, err = _chat(
        ["--session", str(out_dir / "session.json"), "-o", str(out_dir), *TINY],
        "make the cat black\n",
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert "resumed" in err
    assert 'changed "a grey cat" -> "a black cat"' in out
    history = llm_env.messages[-1]
    assert any("move the dog up" not in m["content"] for m in history)
    assert "a cat and a dog" in "".join(m["content"] for m in history)
    session = json.loads((out_dir / "session.json").read_text())
    assert [t["request"] for t in session["turns"]] == ["a cat and a dog", "make the cat black"]


def test_a_non_english_request_flows_through(make_planner, llm_server, fresh, tmp_path):
    llm_server.enqueue(CAT_DOG, DOG_MOVED)
    chat = Conversation(make_planner(), fresh, session_path=tmp_path / "s.json", seed=1)
    chat.send("一只猫和一只狗")
    turn = chat.send("把狗移到上面")
    assert turn.layout.names == ["a grey cat", "a brown dog"]  # the recorded reply is English
    assert "New request: 把狗移到上面" in llm_server.messages[1][-1]["content"]
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert saved["turns"][1]["request"] == "把狗移到上面"


def test_a_crash_mid_render_leaves_the_session_readable(make_planner, llm_server, fresh, tmp_path):
    llm_server.enqueue(CAT_DOG, DOG_MOVED, DOG_MOVED)
    path = tmp_path / "s.json"
    chat = Conversation(make_planner(), fresh, session_path=path, seed=2)
    chat.send("a cat and a dog")
    before = path.read_bytes()

    def crash(phase, step, total):
        if step == 2:
            raise KeyboardInterrupt  # the user pulls the plug half-way through a picture

    with pytest.raises(KeyboardInterrupt):
        chat.send("move the dog up", progress=crash)
    assert path.read_bytes() == before
    chat.close()
    resumed = Conversation.load(path, make_planner(), fresh)
    assert len(resumed.turns) == 1
    assert resumed.send("move the dog up").layout.boxes[1].y == 40


def test_runtime_failures_become_render_errors(fresh):
    def broken(phase, step, total):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")

    layout = Layout.from_json(json.dumps({"boxes": [], "background": "a beach"}))
    with pytest.raises(RenderError, match="rendering failed: CUDA out of memory. Tried"):
        fresh.render(layout, progress=broken)


def test_bench_edit_reuses_the_objects(capsys):
    assert run(["bench", "edit", *TINY[:4], "--device", "cpu", "--no-sam"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].startswith("first picture: ") and "3 objects generated" in lines[-3]
    assert "0 generated, 3 reused" in lines[-2]
    assert lines[-1].startswith("ratio edit/first: ")  # the timing is for the command to show


def test_the_benchmarked_edit_skips_the_per_box_work(fresh):
    from lmd.bench.edit import bench_edit

    timing = bench_edit(fresh)
    assert (timing.first_generated, timing.edit_generated, timing.edit_reused) == (3, 0, 3)
    # The edit runs the overall generation only: at least one batched UNet call per step
    # (4 steps) fewer than the first picture, which also drew the 3 objects.
    assert timing.edit_unet_calls <= timing.first_unet_calls - 4

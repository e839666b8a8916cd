"""`lmd web` driven in-process through gradio_client on 127.0.0.1: the real app, the real
controller on `random:tiny`, the real litellm client against the scripted loopback LLM server.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from lmd.conversation import MANUAL_REQUEST, Conversation, is_manual
from lmd.conversation.manager import MANUAL_HISTORY_TEXT
from PIL import Image

from lmd.web.llms import OWN_SERVER
from lmd.web.progress import DECODE, PHASES, PLANNING
from tests.scripted_planner import ScriptedPlanner
from tests.sketch_renderer import SketchRenderer
from tests.web_server import CAT_DOG, DOG_MOVED, NO_GRADIO, TINY_ARGS, VIEW, WebServer

pytestmark = NO_GRADIO
AppError = pytest.importorskip("gradio_client.exceptions").AppError

DOG_UP = [["a grey cat", 40, 260, 160, 160], ["a brown dog", 280, 40, 180, 200]]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    with WebServer(tmp_path_factory.mktemp("web")) as server:
        yield server


@pytest.fixture
def page(web):
    web.reset()
    return web.page()


def pixels(path) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def test_a_first_request_then_a_spoken_edit(web, page):
    web.llm.enqueue(CAT_DOG, DOG_MOVED)
    first = page.send("a cat and a dog", show_boxes=False, seed=101)  # a seed no test shares
    assert first["chat"] == [
        ("user", "a cat and a dog"),
        ("assistant", "2 objects: a grey cat, a brown dog; background: A realistic photo of "
         "a park (2 drawn, 0 reused)"),
    ]  # fmt: skip
    assert first["table"]["data"] == [
        ["a grey cat", 40, 260, 160, 160],
        ["a brown dog", 280, 240, 180, 200],
    ]
    assert first["background"] == "A realistic photo of a park"
    assert first["text"] == ""  # the box is cleared for the next request
    assert Image.open(first["picture"]).size == (128, 128)  # random:tiny, no boxes drawn
    assert [o["caption"] for o in first["objects"]] == ["a grey cat", "a brown dog"]
    assert Image.open(first["objects"][0]["image"]).size == (128, 128)

    edit = page.send("move the dog up")
    assert edit["chat"][-1] == ("assistant", 'moved "a brown dog" (0 drawn, 2 reused)')
    assert edit["status"].startswith("**Turn 2 of 2**")
    assert edit["table"]["data"][1] == ["a brown dog", 280, 40, 180, 200]
    assert len(web.llm.requests) == 2
    asked = web.llm.messages[1][-1]["content"]
    assert "Caption: a cat and a dog" in asked and "New request: move the dog up" in asked
    assert Image.open(edit["picture"]).size == (512, 512)  # enlarged to draw the boxes on
    assert len(edit["turns"]) == 2 and edit["turns"][1]["caption"].endswith("(now)")
    assert pixels(edit["picture_file"]) != pixels(first["picture_file"])


def test_a_hand_edit_is_drawn_without_asking_the_llm_and_undo_redo_step_over_it(web, page):
    web.llm.enqueue(CAT_DOG)
    first = page.send("a cat and a dog")
    asked = len(web.llm.requests)
    edited = page.apply(DOG_UP, "A realistic photo of a park")
    assert len(web.llm.requests) == asked  # the LLM server saw no request
    assert edited["chat"][-2:] == [
        ("user", "(edited the layout by hand)"),
        ("assistant", 'moved "a brown dog" (0 drawn, 2 reused)'),
    ]
    assert edited["table"]["data"] == DOG_UP
    assert pixels(edited["picture_file"]) != pixels(first["picture_file"])
    saved = json.loads(Path(edited["session_file"]).read_text())
    assert [t["request"] for t in saved["turns"]] == ["a cat and a dog", MANUAL_REQUEST]

    undone = page.call("/undo")
    assert undone["table"]["data"] == first["table"]["data"]
    assert undone["status"].startswith("**Turn 1 of 2**")
    assert pixels(undone["picture_file"]) == pixels(first["picture_file"])
    redone = page.call("/redo")
    assert redone["table"]["data"] == DOG_UP
    assert pixels(redone["picture_file"]) == pixels(edited["picture_file"])
    with pytest.raises(AppError, match="nothing to redo"):
        page.call("/redo")


def test_the_downloaded_session_loads_back_and_lmd_chat_resumes_it(
    web, page, tmp_path, llm_env, monkeypatch, capsys
):
    web.llm.enqueue(CAT_DOG)
    page.send("a cat and a dog")
    shown = page.apply(DOG_UP, "A realistic photo of a park", "blurry")
    path = tmp_path / "session.json"
    shutil.copy(shown["session_file"], path)
    loaded = Conversation.load(path, ScriptedPlanner(), SketchRenderer())
    assert [t.request for t in loaded.turns] == ["a cat and a dog", MANUAL_REQUEST]
    assert is_manual(loaded.current) and loaded.current.layout.negative == "blurry"
    assert [[b.name, b.x, b.y, b.w, b.h] for b in loaded.current.layout.boxes] == DOG_UP
    loaded.close()  # one conversation at a time on a session file

    from io import StringIO

    from lmd.cli import run

    llm_env.enqueue(CAT_DOG)
    monkeypatch.setattr("sys.stdin", StringIO("move the dog back down\n"))
    code = run(["chat", "--session", str(path), "-o", str(tmp_path / "out"), *TINY_ARGS])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "resumed" in err and "turn 3:" in out and 'moved "a brown dog"' in out
    asked = llm_env.messages[-1][-1]["content"]
    assert f"Request: {MANUAL_HISTORY_TEXT}" in asked
    assert "('a brown dog', [280, 40, 180, 200])" in asked  # the hand-edited layout


def test_a_corrupt_uploaded_session_is_one_message_and_changes_nothing(web, page, tmp_path):
    web.llm.enqueue(CAT_DOG)
    page.send("a cat and a dog")
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "seed": ')
    with pytest.raises(AppError) as caught:
        page.open(broken)
    message = str(caught.value)
    assert "is not valid JSON" in message and "\n" not in message
    assert "Traceback" not in message
    not_a_session = tmp_path / "layout.json"
    not_a_session.write_text('{"boxes": [], "background": "a beach"}')
    with pytest.raises(AppError, match="is not a valid session"):
        page.open(not_a_session)
    shown = page.call("/refresh")
    assert shown["chat"][:1] == [("user", "a cat and a dog")] and len(shown["chat"]) == 3
    role, said = shown["chat"][-1]  # the failure stays in the conversation
    assert role == "assistant" and said.startswith("Not done: ") and "not a valid session" in said


def test_each_page_has_its_own_conversation_and_an_upload_continues_one(web, page, tmp_path):
    web.llm.enqueue(CAT_DOG, DOG_MOVED)
    first = page.send("a cat and a dog")
    path = tmp_path / "mine.json"
    shutil.copy(first["session_file"], path)
    other = web.page()  # another browser: a conversation of its own
    assert other.call("/refresh")["chat"] == []
    opened = other.open(path)
    assert opened["chat"][0] == ("user", "a cat and a dog")
    assert "Opened mine.json: 1 turn." in opened["status"]
    assert opened["picture_file"] is None  # the first page's picture is not this page's
    assert Image.open(opened["picture"]).getpixel((5, 5)) == (245, 245, 245)  # layout sketch
    assert opened["table"] == first["table"]
    redrawn = other.apply(opened["table"]["data"], opened["background"])
    assert pixels(redrawn["picture_file"]) == pixels(first["picture_file"])  # same seeds
    moved = other.send("move the dog up")
    assert moved["chat"][-1] == ("assistant", 'moved "a brown dog" (0 drawn, 2 reused)')
    assert len(page.call("/refresh")["chat"]) == 2  # the first page did not move its dog


def test_an_llm_that_returns_garbage_gives_a_message_and_keeps_the_conversation(web, page):
    web.llm.enqueue(CAT_DOG)
    page.send("a cat and a dog")
    web.llm.default = "I am sorry, I cannot draw boxes today."
    with pytest.raises(AppError) as caught:
        page.send("move the dog up")
    message = str(caught.value)
    assert "layout" in message and "\n" not in message and "Traceback" not in message
    # The failure stays in view after the toast: in the conversation, under the request that
    # failed, and on the status line; the turn is the one before.
    shown = page.call("/refresh")
    assert shown["status"].startswith("**Turn 1 of 1**")
    assert shown["chat"][2:] == [("user", "move the dog up"), ("assistant", f"Not done: {message}")]
    assert f"**Not done: {message}**" in shown["status"]
    web.llm.enqueue(DOG_MOVED)
    moved = page.send("move the dog up")  # the next action that works clears it
    assert "Not done" not in moved["status"] and len(moved["chat"]) == 4


def test_an_unreachable_llm_and_bad_settings_are_one_message_each(web, page):
    with pytest.raises(AppError, match="could not reach the LLM at http://127.0.0.1:9/v1"):
        page.send("a cat", llm=OWN_SERVER, own_model="m", own_url="http://127.0.0.1:9/v1")
    with pytest.raises(AppError, match="Steps must be a whole number from 1 to 999 but is 0"):
        page.send("a cat", steps=0)
    with pytest.raises(AppError, match="Steps must be at most 100 on this server but is 101"):
        page.send("a cat", steps=101)  # the server's --max-steps
        page.send("a cat", steps=0)
    with pytest.raises(AppError, match="Steps must be a whole number from 1 to 999 but is 1000"):
        page.send("a cat", steps=1000)  # one rule with the command line's --steps
    with pytest.raises(AppError, match=r"Seed must be a whole number from 0 to 2\*\*63 - 1"):
        page.send("a cat", seed=-3)
    assert page.call("/refresh")["chat"] == []


def test_a_bad_table_cell_names_the_row_and_column(web, page):
    with pytest.raises(AppError, match=r"row 1 \('a cat'\): x must be a number, not 'left'"):
        page.apply([["a cat", "left", 0, 100, 100]], "a park")


def test_a_render_that_runs_out_of_memory_is_one_message(web, page, monkeypatch):
    with web.handlers.pool.renderer(web.settings) as renderer:
        pass

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")

    monkeypatch.setattr(renderer.controller, "render", out_of_memory)
    with pytest.raises(AppError, match="rendering failed: CUDA out of memory. Tried"):
        page.apply([["a grey cat", 10, 10, 100, 100]], "a park")
    shown = page.call("/refresh")
    assert shown["chat"] == [] and shown["session_file"] is None  # no turn was recorded


def test_renders_queue_one_at_a_time_and_others_see_their_place(web, page):
    render_events = [f for f in web.demo.fns.values() if f.concurrency_id == "render"]
    assert {f.api_name for f in render_events} >= {"send", "apply", "new_seed"}
    assert web.handlers.pool.slots == 1
    # Two pages ask at once: one draws, the other waits in line and is told its place.
    table = {"headers": ["name", "x", "y", "w", "h"], "data": [["a cat", 10, 10, 100, 100]]}
    jobs = [
        p.client.submit(api_name="/apply", rows=table, background=bg, negative="")
        for p, bg in ((page, "a park"), (web.page(), "a beach"))
    ]
    told, most = set(), 0
    deadline = time.monotonic() + 120
    while not all(j.done() for j in jobs) and time.monotonic() < deadline:
        most = max(most, web.handlers.pool.running)
        for job in jobs:
            for progress in job.status().progress_data or []:
                told.add(progress.desc or "")
        time.sleep(0.005)
    assert all(len(j.result()) == len(VIEW) for j in jobs)
    assert most == 1
    assert any(t.startswith("waiting for the renderer: 1 picture is before yours") for t in told)


def test_progress_is_reported_per_phase(web):
    web.reset()
    web.llm.enqueue(CAT_DOG)
    seen = []

    def report(progress, desc=None, **_):
        seen.append((desc, progress))

    h = web.handlers
    h.send(None, "a cat and a dog", _defaults(web), True, report)
    labels = [d for d, _ in seen]
    assert labels[0] == PLANNING
    assert labels[-1] == DECODE
    boxes = [p for d, p in seen if d == PHASES["boxes"]]
    overall = [p for d, p in seen if d == PHASES["overall"]]
    assert boxes[-1] == (2, 2) and overall[-1] == (2, 2)  # 2 steps, both boxes in one batch
    assert labels.index(PHASES["boxes"]) < labels.index(PHASES["overall"])


def _defaults(web):
    return ("", "", "", "", "lmd", 2, 102, True)  # the server's LLM; a seed no other test uses


def test_the_render_limit_follows_concurrency(tmp_path):
    from lmd.api import RenderSettings
    from lmd.web.app import build_app, make_handlers
    from lmd.web.limits import WebLimits
    from lmd.web.llms import LlmChoice, LlmChoices

    llms = LlmChoices(LlmChoice("openai/x", "http://127.0.0.1:9/v1"))
    limits = WebLimits(max_waiting=3)
    handlers = make_handlers(tmp_path, RenderSettings(), llms, concurrency=2, limits=limits)
    assert (handlers.pool.slots, handlers.pool.max_waiting) == (2, 3)
    demo = build_app(handlers)
    fns = list(demo.fns.values())
    undo = next(f for f in fns if f.api_name == "undo")
    assert undo.concurrency_limit is None  # undo never waits behind a render


def test_loading_the_box_editor_prints_nothing_to_the_terminal(web, capfd):
    import urllib.request

    from gradio_image_annotation import image_annotator

    capfd.readouterr()
    component = image_annotator.get_component_class_id()
    file = f"gradio_api/custom_component/{component}/client/component/index.js"
    with urllib.request.urlopen(web.url + file, timeout=30) as answer:
        assert answer.status == 200 and b"import" in answer.read()
    out, err = capfd.readouterr()
    assert "environment=client" not in out + err

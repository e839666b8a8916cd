"""`lmd web` shared with visitors, driven through gradio_client: the server's key stays home,
requests past a limit are refused in one line and change nothing, Stop really stops, errors
show no server paths, and Gradio's copies of files stay private and are deleted."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from PIL import Image

from lmd.web.limits import WebLimits
from lmd.web.llms import OWN_SERVER
from lmd.web.stop import STOPPED
from tests.fixtures_llm import TEST_API_KEY, ScriptedLLMServer
from tests.web_server import CAT_DOG, DOG_MOVED, NO_GRADIO, WebServer

pytestmark = NO_GRADIO
AppError = pytest.importorskip("gradio_client.exceptions").AppError

LIMITS = WebLimits(max_boxes=3, max_canvas=1024, max_turns=3, max_steps=900, max_upload_mb=0.05)
CAT_MOVED = [["a grey cat", 60, 260, 160, 160], ["a brown dog", 280, 240, 180, 200]]
CAT_RESIZED = [["a grey cat", 40, 260, 150, 150], ["a brown dog", 280, 240, 180, 200]]


@pytest.fixture(scope="module")
def second():
    server = ScriptedLLMServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory, second):
    root = tmp_path_factory.mktemp("shared")
    allowed = (f"openai/second@{second.url}",)
    with WebServer(root, limits=LIMITS, allowed=allowed) as server:
        yield server


@pytest.fixture
def page(shared):
    shared.reset()
    return shared.page()


@pytest.fixture
def evil():
    """A listener a visitor points the page at, recording what it is sent."""
    server = ScriptedLLMServer()
    yield server
    server.stop()


def test_a_url_a_visitor_types_never_gets_the_servers_key(shared, page, evil, second):
    evil.enqueue(CAT_DOG, DOG_MOVED)
    own = {"llm": OWN_SERVER, "own_model": "m", "own_url": evil.url}
    page.send("a cat and a dog", **own)
    page.send("move the dog up", **own, own_key="sk-visitor-secret")
    assert [h["authorization"] for h in evil.headers] == [
        "Bearer no-key",
        "Bearer sk-visitor-secret",
    ]
    assert TEST_API_KEY not in json.dumps(evil.headers)
    assert [r["model"] for r in evil.requests] == ["m", "m"]
    # The visitor's key is kept nowhere: not in the session file, nor in Gradio's cache.
    for path in shared.root.rglob("*"):
        assert not path.is_file() or b"sk-visitor-secret" not in path.read_bytes(), path
    # The server's own LLMs (--llm and --allow-llm) are asked with the server's key.
    second.enqueue(CAT_DOG)
    shared.page().send("a cat and a dog", llm=f"openai/second at {second.url}")
    assert second.headers[-1]["authorization"] == f"Bearer {TEST_API_KEY}"
    # A URL the server does not offer cannot be slipped in as a choice.
    with pytest.raises(AppError, match="is not in the list of choices"):
        page.send("a cat", llm=f"openai/m at {evil.url}")
    assert len(evil.requests) == 2


def test_more_objects_than_allowed_are_refused_in_the_table_and_asked_again_of_the_llm(
    shared, page
):
    four = [["a cat", 10 + 100 * i, 10, 90, 90] for i in range(4)]
    with pytest.raises(AppError) as caught:
        page.apply(four, "a park")
    assert str(caught.value) == (
        "the layout has 4 objects; this server draws at most 3 in one picture: remove some rows"
    )
    crowd = "Objects: [" + ", ".join(f"('a cat', [{10 + 100 * i}, 10, 90, 90])" for i in range(4))
    shared.llm.default = crowd + "]\nBackground prompt: a park"
    with pytest.raises(AppError, match="more than the 3 a picture may have"):
        page.send("four cats")
    assert page.call("/refresh")["chat"] == []


def _session_file(page, tmp_path, name: str, turns: int, canvas: int) -> Path:
    """The page's session (one turn drawn) with `turns` copies of that turn on `canvas`."""
    data = json.loads(Path(page.call("/refresh")["session_file"]).read_text())
    turn = data["turns"][0]
    turn["layout"].update(width=canvas, height=canvas)
    data.update(turns=[turn] * turns, cursor=turns - 1)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_an_opened_session_is_checked_before_it_replaces_anything(shared, page, tmp_path):
    shared.llm.enqueue(CAT_DOG)
    first = page.send("a cat and a dog")
    too_long = _session_file(page, tmp_path, "long.json", turns=4, canvas=512)
    with pytest.raises(AppError) as caught:
        page.open(too_long)
    assert (
        str(caught.value) == "long.json has 4 turns; this server opens sessions of at most 3 turns"
    )
    huge = _session_file(page, tmp_path, "huge.json", turns=1, canvas=16384)
    with pytest.raises(AppError, match="huge.json, turn 1: the layout's canvas is 16384 x 16384"):
        page.open(huge)
    shown = page.call("/refresh")
    assert shown["chat"][:-1] == first["chat"] and shown["table"] == first["table"]
    assert shown["chat"][-1][1].startswith("Not done: huge.json")  # shown until the next action
    # Within the limits: opened, and the strip of turns is drawn at thumbnail size.
    opened = page.open(_session_file(page, tmp_path, "big.json", turns=3, canvas=1024))
    assert len(opened["turns"]) == 3
    assert all(max(Image.open(t["image"]).size) <= 160 for t in opened["turns"])


def test_an_upload_larger_than_allowed_is_refused(page, tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"padding": "x" * 100_000}))
    with pytest.raises(Exception, match="(?i)size|large|413"):
        page.open(big)
    assert page.call("/refresh")["chat"] == []


def test_errors_on_the_page_show_no_server_paths(shared, page, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "seed": ')
    with pytest.raises(AppError) as caught:
        page.open(broken)
    message = str(caught.value)
    assert message.startswith("session file broken.json is not valid JSON"), message
    assert "/" not in message


def _wait_for(job, test, timeout: float = 120) -> str:
    """Wait until one of `job`'s progress descriptions passes `test`; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not job.done():
        for progress in job.status().progress_data or []:
            if progress.desc and test(progress):
                return progress.desc
        time.sleep(0.02)
    raise AssertionError(f"no such progress before the job ended: {job.status()}")


def test_stop_ends_a_long_render_between_two_steps_and_changes_nothing(shared, page):
    shared.llm.enqueue(CAT_DOG)
    first = page.send("a cat and a dog")
    table = {"headers": ["name", "x", "y", "w", "h"], "data": CAT_RESIZED}
    job = page.client.submit(
        api_name="/apply", rows=table, background="a park", negative="", steps=900
    )
    _wait_for(job, lambda p: p.index is not None and p.index >= 1)  # drawing, step 1 or later
    stopped_at = time.monotonic()
    page.client.predict(api_name="/stop")
    shown = dict(zip(["chat", "picture", "status"], job.result(timeout=120)[:3], strict=True))
    took = time.monotonic() - stopped_at
    assert took < 30, took  # 900 steps would take far longer
    assert STOPPED in shown["status"] and shown["status"].startswith("**Turn 1 of 1**")
    assert len(shown["chat"]) == len(first["chat"])
    assert shared.handlers.pool.running == 0
    again = page.apply(CAT_MOVED, "a park")  # the page and the renderer work on
    assert again["status"].startswith("**Turn 2 of 2**")


def test_stop_takes_a_waiting_picture_out_of_the_line(shared, page):
    other = shared.page()
    table = {"headers": ["name", "x", "y", "w", "h"], "data": [["a cat", 10, 10, 100, 100]]}
    long = page.client.submit(
        api_name="/apply", rows=table, background="a beach", negative="", steps=900
    )
    _wait_for(long, lambda p: p.index is not None and p.index >= 1)
    waiting = other.client.submit(
        api_name="/apply", rows=table, background="a lake", negative="", steps=2
    )
    told = _wait_for(waiting, lambda p: p.desc.startswith("waiting for the renderer"))
    assert told.startswith("waiting for the renderer: 1 picture is before yours; about ")
    other.client.predict(api_name="/stop")
    assert STOPPED in waiting.result(timeout=60)[2]
    assert shared.handlers.pool.waiting == 0 and not long.done()
    page.client.predict(api_name="/stop")
    assert STOPPED in long.result(timeout=120)[2]


def test_gradios_copies_are_private_and_deleted_when_old(tmp_path):
    limits = WebLimits(cache_minutes=2 / 60)
    with WebServer(tmp_path / "web", limits=limits) as server:
        cache = server.cache
        assert cache == tmp_path / "web" / ".gradio-cache"
        assert str(cache) == server.demo.GRADIO_CACHE
        assert stat.S_IMODE(cache.stat().st_mode) == 0o700
        server.llm.enqueue(CAT_DOG)
        server.page().send("a cat and a dog")
        copies = list(cache.rglob("*.png"))
        assert copies  # the picture, the strip, the objects: served from the private folder
        deadline = time.monotonic() + 30
        while any(p.exists() for p in copies) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(p.exists() for p in copies)  # older than 2 s: deleted


def test_messages_lose_server_paths_but_keep_urls_and_markup():
    from lmd.web.handlers import hide_paths

    assert hide_paths("session file /tmp/lmd-web-x/ab/1/session.json is not valid JSON") == (
        "session file session.json is not valid JSON"
    )
    kept = "could not reach the LLM at http://127.0.0.1:9/v1: it sent '<b>x</b></html>'"
    assert hide_paths(kept) == kept

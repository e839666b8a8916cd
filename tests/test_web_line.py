"""The pictures' line in `lmd web` (no gradio needed): first come first served, an estimate from
this server's measured render times, Stop while waiting, a full line refused; the LLM choices
a visitor has; the limits of an opened session."""

from __future__ import annotations

import threading
import time

import pytest
from lmd.conversation import Session
from lmd.layouts import Layout

from lmd.api import RenderSettings
from lmd.web.clock import RenderClock
from lmd.web.limits import LimitError, WebLimits
from lmd.web.llms import NO_KEY, OWN_SERVER, LlmChoice, LlmChoices
from lmd.web.pool import RenderPool, ServerBusy
from lmd.web.state import TurnSettings, WebSession
from lmd.web.stop import RenderStopped
from tests.scripted_planner import CAT_DOG, ScriptedPlanner
from tests.test_web_pool import LMD, Loaded, Painter


def busy(pool: RenderPool, settings: RenderSettings = LMD):
    """Hold one renderer in a thread until the returned event is set; wait until it holds."""
    held, release = threading.Event(), threading.Event()

    def work() -> None:
        with pool.renderer(settings):
            held.set()
            release.wait(30)

    threading.Thread(target=work, daemon=True).start()
    assert held.wait(30)
    return release


def test_the_estimate_comes_from_measured_render_times():
    clock = RenderClock()
    text = clock.waiting_text([3.0], 0, 1)
    assert text == (
        "waiting for the renderer: 1 picture is before yours; no estimate yet (no picture has "
        "been drawn on this server)"
    )
    for seconds in (10.0, 30.0, 20.0):
        clock.record(seconds)
    assert clock.typical == 20.0
    assert clock.wait([5.0], ahead=0, slots=1) == 15.0  # the running one's typical rest
    assert clock.wait([5.0], ahead=1, slots=1) == 35.0  # then one more picture
    assert clock.wait([5.0], ahead=0, slots=2) == 0.0  # a second renderer is free
    assert clock.wait([5.0], ahead=1, slots=2) == 15.0  # the one ahead takes it
    assert clock.waiting_text([5.0], 1, 1) == (
        "waiting for the renderer: 2 pictures are before yours; about 35 s (a picture here "
        "takes 20 s, the median of the last 3)"
    )
    late = clock.waiting_text([200.0], 0, 1)  # longer than usual: said, not hidden
    assert late.endswith("the one being drawn has taken 3 min so far")
    clock.record(500.0)
    clock.record(600.0)
    assert clock.typical == 30.0  # a new measurement moves the estimate


def test_the_pool_measures_each_render_and_tells_a_waiting_picture_where_it_stands():
    pool = RenderPool(1, load=Loaded)
    with pool.renderer(LMD):
        time.sleep(0.3)
    assert pool.clock.measured == 1 and pool.clock.typical >= 0.3
    release = busy(pool)
    told: list[str] = []

    def wait() -> None:
        with pool.renderer(LMD, on_wait=told.append):
            pass

    waited = threading.Thread(target=wait)
    waited.start()
    time.sleep(0.5)
    assert pool.waiting == 1
    release.set()
    waited.join(30)
    assert told and told[0].startswith("waiting for the renderer: 1 picture is before yours")
    assert "a picture here takes" in told[0]


def test_pictures_wait_in_the_order_they_came():
    pool = RenderPool(1, load=Loaded)
    release = busy(pool)
    order: list[int] = []

    def wait(n: int) -> None:
        with pool.renderer(LMD):
            order.append(n)

    threads = []
    for n in range(4):
        threads.append(threading.Thread(target=wait, args=(n,)))
        threads[-1].start()
        while pool.waiting < n + 1:
            time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3]


def test_a_waiting_picture_can_be_stopped_and_a_full_line_is_refused():
    pool = RenderPool(1, max_waiting=1, load=Loaded)
    release = busy(pool)
    stop = threading.Event()
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            with pool.renderer(LMD, stopped=stop.is_set):
                pass
        except BaseException as e:
            outcome.append(e)

    waiting = threading.Thread(target=wait)
    waiting.start()
    while pool.waiting < 1:
        time.sleep(0.01)
    with (
        pytest.raises(ServerBusy, match="the server is busy: 1 picture is waiting for it"),
        pool.renderer(LMD),
    ):
        pass
    stop.set()
    waiting.join(30)
    assert isinstance(outcome[0], RenderStopped) and pool.waiting == 0
    release.set()
    with pool.renderer(LMD):  # the line is free again
        assert pool.running == 1


def test_visitors_choose_among_the_servers_llms_or_their_own_server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server")
    llms = LlmChoices(
        LlmChoice("openai/main", "http://gpu:8000/v1"),
        allowed=[LlmChoice.parse("gpt-4.1-mini"), LlmChoice.parse("vertex_ai/x@1@http://h/v1")],
        visitor_servers=True,
        cache=False,
    )
    assert llms.labels == [
        "openai/main at http://gpu:8000/v1", "gpt-4.1-mini", "vertex_ai/x@1 at http://h/v1",
        OWN_SERVER,
    ]  # fmt: skip
    server = llms.planner("")
    assert (server.model, server.llm_base_url, server.api_key) == (
        "openai/main",
        "http://gpu:8000/v1",
        None,
    )
    assert llms.planner("gpt-4.1-mini").llm_base_url is None  # the provider's own server
    own = llms.planner(OWN_SERVER, "qwen", "http://mine:1234/v1", "")
    assert (own.model, own.llm_base_url, own.api_key, own.cache) == (
        "openai/qwen", "http://mine:1234/v1", NO_KEY, None,
    )  # fmt: skip
    assert llms.planner(OWN_SERVER, "bedrock/claude", "http://m/v1", "k").model == (
        "openai/bedrock/claude"  # never another provider's credentials from the environment
    )
    with pytest.raises(ValueError, match="LLM must be one of"):
        llms.planner("openai/evil at http://attacker/v1")
    with pytest.raises(ValueError, match="give its model name and its base URL"):
        llms.planner(OWN_SERVER, "qwen", "", "")
    with pytest.raises(ValueError, match="needs an http"):
        llms.planner(OWN_SERVER, "qwen", "file:///etc/passwd", "")
    closed = LlmChoices(LlmChoice("openai/main", "http://gpu:8000/v1"))
    assert OWN_SERVER not in closed.labels
    with pytest.raises(ValueError, match="LLM must be one of"):
        closed.planner(OWN_SERVER, "qwen", "http://mine:1234/v1", "")
    with pytest.raises(ValueError, match="--allow-llm needs an http"):
        LlmChoice.parse("m@http://")


def test_an_opened_session_past_a_limit_changes_nothing(tmp_path):
    pool = RenderPool(1, load=Painter)
    settings = TurnSettings(render=LMD, planner=ScriptedPlanner(CAT_DOG, CAT_DOG), seed=1)
    page = WebSession(tmp_path, pool)
    before = page.send("a cat", settings)
    limits = WebLimits(max_turns=2, max_canvas=1024, max_boxes=3)
    session = Session.load(page.session_file)
    big = session.turns[0].layout.scaled(4096, 4096)
    cases = {
        "turns.json": (session.model_copy(update={"turns": session.turns * 3, "cursor": 2}),
                       "turns.json has 3 turns; this server opens sessions of at most 2 turns"),
        "canvas.json": (session.model_copy(update={"turns": [session.turns[0].model_copy(
                        update={"layout": big})]}),
                        "canvas.json, turn 1: the layout's canvas is 4096 x 4096 px"),
    }  # fmt: skip
    for name, (bad, message) in cases.items():
        path = tmp_path / name
        path.write_text(bad.to_json())
        with pytest.raises(LimitError, match=message):
            page.open(path, settings, limits)
        assert page.current == before and page.session_file.parent.name.endswith("_a-cat")
    crowded = Layout(boxes=[before.layout.boxes[0]] * 4, background="a park")
    with pytest.raises(LimitError, match="the layout has 4 objects; this server draws at most 3"):
        limits.check_layout(crowded)

"""`lmd web`'s "keep the look of objects that recur" checkbox: a page's choice reaches its
conversation at the next turn and is saved with its session (the handlers and the page's
`WebSession`, the real renderer pool on `random:tiny`; no browser)."""

from __future__ import annotations

import json

import pytest

from lmd.api import RenderSettings
from tests.scripted_planner import ScriptedPlanner, reply
from tests.web_server import NO_GRADIO

pytestmark = NO_GRADIO

PARK = reply("('a grey cat', [60, 200, 220, 260])")
NIGHT = reply("('a grey cat', [60, 200, 220, 260])", "a park at night")
TINY = RenderSettings(model="random:tiny", method="sd", steps=2, sam=False, device="cpu",
                      height=64, width=64)  # fmt: skip


@pytest.fixture
def handlers(tmp_path):
    from lmd.web.app import make_handlers

    return make_handlers(tmp_path, TINY, lambda llm, url: ScriptedPlanner())


def two_turns(handlers, ws):
    from lmd.web.state import TurnSettings

    settings = TurnSettings(render=TINY, planner=ScriptedPlanner(PARK, NIGHT))
    ws.send("a grey cat in a park", settings)
    return ws.send("make it night", settings)


def test_the_checkbox_turns_anchoring_off_for_the_pages_next_turns(handlers):
    ws = handlers.set_consistent(None, False)  # a new page: the session is made for it
    assert ws.consistent is False
    night = two_turns(handlers, ws)
    assert night.anchors == {}
    saved = json.loads(ws.session_file.read_text())
    assert saved["meta"]["consistent"] is False

    assert handlers.set_consistent(ws, True) is ws
    ws.start_over()
    night = two_turns(handlers, ws)
    assert night.anchors == {"obj1": 0}  # the cat keeps its look from the first turn
    assert "a grey cat as in turn 1" in handlers_chat(ws)[-1]["content"]


def handlers_chat(ws):
    from lmd.web import views

    return views.chat_messages(ws.conversation.turns)

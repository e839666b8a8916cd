"""`RenderPool`: at most `slots` renders at once, one renderer per concurrent render, one cache
per settings; and `WebSession`, each page's own conversation. No gradio needed."""

from __future__ import annotations

import threading
import time

import pytest
from lmd.conversation import Conversation, RenderOutput

from lmd.api import RenderSettings
from lmd.controller import BoxCache
from lmd.web.pool import RenderPool
from lmd.web.state import BusyError, TurnSettings, WebSession
from tests.scripted_planner import CAT_DOG, DOG_LEFT, ScriptedPlanner

LMD = RenderSettings(model="random:tiny", method="lmd")
SD = RenderSettings(model="random:tiny", method="sd")


class Loaded:
    """A stand-in for a loaded `lmd.api.Renderer` (the pool only hands it out)."""

    def __init__(self, settings: RenderSettings, first: bool) -> None:
        self.settings = settings
        self.first = first
        self.cache = BoxCache()


def hold_all(pool: RenderPool, settings: list[RenderSettings], seconds: float = 0.2):
    """Borrow a renderer for each of `settings` in its own thread; return what each got."""
    got, active, most = [], [0], [0]
    lock = threading.Lock()

    def work(s: RenderSettings) -> None:
        with pool.renderer(s) as r:
            with lock:
                got.append(r)
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(seconds)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=work, args=(s,)) for s in settings]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return got, most[0]


def test_one_slot_renders_one_at_a_time_with_one_renderer():
    pool = RenderPool(1, load=Loaded)
    got, most = hold_all(pool, [LMD, LMD, LMD])
    assert most == 1
    assert len({id(r) for r in got}) == 1 and got[0].first
    assert pool.loaded(LMD) == 1 and pool.running == 0


def test_two_slots_draw_at_once_on_two_renderers_that_share_one_cache():
    pool = RenderPool(2, load=Loaded)
    got, most = hold_all(pool, [LMD, LMD])
    assert most == 2
    a, b = got
    assert a is not b and sorted([a.first, b.first]) == [False, True]
    assert a.cache is b.cache  # an object drawn by one is reused by the other
    got, _ = hold_all(pool, [LMD, LMD, LMD])
    assert pool.loaded(LMD) == 2  # never more renderers than slots


def test_the_slot_limit_holds_across_settings():
    pool = RenderPool(1, load=Loaded)
    got, most = hold_all(pool, [LMD, SD])
    assert most == 1 and {r.settings for r in got} == {LMD, SD}


def test_idle_settings_beyond_the_limit_are_let_go():
    pool = RenderPool(1, max_settings=1, load=Loaded)
    hold_all(pool, [LMD], 0)
    hold_all(pool, [SD], 0)
    assert pool.loaded(LMD) == 0 and pool.loaded(SD) == 1


def test_a_failed_load_gives_its_slot_back():
    def broken(settings, first):
        raise RuntimeError("no such model")

    pool = RenderPool(1, load=broken)
    with pytest.raises(RuntimeError, match="no such model"), pool.renderer(LMD):
        pass
    assert pool.running == 0 and pool.loaded(LMD) == 0


def test_the_pool_needs_a_slot():
    with pytest.raises(ValueError, match="`slots` must be at least 1"):
        RenderPool(0)


class Painter(Loaded):
    """A renderer that paints nothing: the picture is blank, one object picture per box."""

    def __call__(self, request):
        from PIL import Image

        n = len(request.layout.boxes)
        blank = Image.new("RGB", (8, 8))
        return RenderOutput(image=blank, generated=n, reused=0, box_images=[blank] * n)


def test_each_page_keeps_its_own_conversation_and_object_pictures(tmp_path):
    pool = RenderPool(1, load=Painter)
    one, two = WebSession(tmp_path, pool), WebSession(tmp_path, pool)
    settings = TurnSettings(render=LMD, planner=ScriptedPlanner(CAT_DOG, DOG_LEFT), seed=5)
    turn = one.send("a cat and a dog", settings)
    assert two.current is None and two.folder is None
    assert [name for _, name in one.object_pictures(turn)] == ["a cat", "a dog"]
    assert one.session_file == one.folder / "session.json" and one.session_file.exists()
    edited = one.send("move the dog left", settings)
    assert one.jump(0) == turn and one.jump(1) == edited  # the strip: undo/redo to a turn
    first_session, _held = one.session_file, one.conversation  # as a queued event may hold it
    one.start_over()
    assert one.current is None and one.session_file is None
    # The page let go of the old session's lock: a chat can resume it now.
    resumed = Conversation.load(first_session, ScriptedPlanner(), Painter(LMD, True))
    assert len(resumed.turns) == 2
    resumed.close()


def test_a_page_refuses_quick_actions_while_it_draws(tmp_path):
    page = WebSession(tmp_path, RenderPool(1, load=Painter))
    with (
        page.busy(wait=True),
        pytest.raises(BusyError, match="still drawing"),
        page.busy(wait=False),
    ):
        pass
    with page.busy(wait=False):
        pass  # free again afterwards


def test_closing_a_temporary_page_removes_its_files(tmp_path):
    pool = RenderPool(1, load=Painter)
    page = WebSession(tmp_path, pool, remove_on_close=True)
    page.send("a cat", TurnSettings(render=LMD, planner=ScriptedPlanner(CAT_DOG), seed=1))
    folder = page.folder
    assert folder.exists()
    page.close()
    assert not folder.exists()
    kept = WebSession(tmp_path, pool)
    kept.send("a cat", TurnSettings(render=LMD, planner=ScriptedPlanner(CAT_DOG), seed=1))
    folder = kept.folder
    kept.close()
    assert folder.exists()


def test_on_load_is_told_only_when_models_load():
    pool, loads = RenderPool(1, load=Loaded), []
    for _ in range(2):
        with pool.renderer(LMD, on_load=lambda: loads.append("load")):
            pass
    with pool.renderer(SD, on_load=lambda: loads.append("load sd")):
        pass
    assert loads == ["load", "load sd"]


def test_an_opened_session_shows_only_this_pages_own_pictures(tmp_path):
    pool = RenderPool(1, load=Painter)
    settings = TurnSettings(render=LMD, planner=ScriptedPlanner(CAT_DOG), seed=1)
    mine, theirs = WebSession(tmp_path / "a", pool), WebSession(tmp_path / "b", pool)
    theirs.send("a cat", settings)
    mine.open(theirs.session_file, settings)  # names a picture in the other page's folder
    assert mine.current.image_path is None and mine.picture_file(mine.current) is None
    assert mine.current.layout == theirs.current.layout
    mine.send("a cat", TurnSettings(render=LMD, planner=ScriptedPlanner(CAT_DOG), seed=1))
    own = mine.session_file
    mine.open(own, settings)  # its own session again: its pictures are still its own
    assert mine.picture_file(mine.current) == mine.current.image_path is not None

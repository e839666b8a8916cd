"""`lmd web` in a real browser: Playwright driving Debian's chromium (no browser download).

Types a caption, waits for the picture, edits one box in the table, applies, checks that
the picture and the table changed and that the summary reports reuse, clicks undo, and
saves a screenshot. Every request the browser makes must go to 127.0.0.1.

Set `LMD_WEB_SCREENSHOT=docs/web.png` to also save the page after Apply there (the README's
picture).
"""

from __future__ import annotations

import os
import shutil
import time
from urllib.parse import urlsplit

import pytest

from tests.web_server import CAT_DOG, NO_GRADIO, WebServer

pytestmark = NO_GRADIO
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'"
)

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
"""Headless and quiet: Chromium's own background connections are turned off."""


def chromium() -> str:
    found = os.environ.get("LMD_CHROMIUM") or shutil.which("chromium")
    if not found:
        why = (
            "no chromium: apt-get install -y --no-install-recommends chromium "
            "(or point LMD_CHROMIUM at a Chromium binary)"
        )
        if os.environ.get("CI"):  # .ci/run installs it: CI must not skip this test
            pytest.fail(why)
        pytest.skip(why)
    return found


@pytest.fixture
def browser_page(tmp_path):
    executable = chromium()
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data dir
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1020},
        )
        requests: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        try:
            yield context.new_page(), requests
        finally:
            context.close()


def picture_src(page) -> str | None:
    return page.locator("#lmd-picture img").first.get_attribute("src")


def cell(page, row: int, col: int):
    """The text of a table cell (row and column from 0, the header not counted)."""
    return page.locator(f'#lmd-layout [data-testid="cell-{row}-{col}"] span[data-editable]')


CELL_IS = (
    "([row, col, text]) => document.querySelector("
    '`#lmd-layout [data-testid="cell-${row}-${col}"] span[data-editable]`)'
    "?.innerText.trim() === text"
)


def test_a_person_draws_fixes_a_box_by_hand_and_undoes_it(tmp_path, browser_page):
    page, requests = browser_page
    with WebServer(tmp_path / "web") as web:
        web.llm.enqueue(CAT_DOG)
        page.goto(web.url)
        # 1. Ask for a picture in words and wait for it.
        box = page.get_by_label("What to draw or change")
        box.fill("a cat and a dog")
        box.press("Enter")
        status = page.locator("#lmd-status")
        status.get_by_text("Turn 1 of 1").wait_for(timeout=120_000)
        first_picture = picture_src(page)
        assert first_picture
        assert cell(page, 1, 2).inner_text().strip() == "240"
        asked = len(web.llm.requests)

        # 2. Fix one box by hand: the dog's y, then Apply.
        cell(page, 1, 2).dblclick()
        page.get_by_label("Edit cell").press("Control+A")
        page.keyboard.type("40")
        page.keyboard.press("Enter")
        page.wait_for_function(CELL_IS, arg=[1, 2, "40"])
        page.get_by_text("Objects, each drawn on its own").click()  # open the gallery
        started = time.perf_counter()
        page.locator("#lmd-apply").click()
        status.get_by_text("Turn 2 of 2").wait_for(timeout=120_000)
        page.wait_for_function(
            "src => document.querySelector('#lmd-picture img')?.getAttribute('src') !== src",
            arg=first_picture,
        )
        apply_to_picture = time.perf_counter() - started
        assert picture_src(page) != first_picture
        assert 'moved "a brown dog"' in status.inner_text()
        assert "(0 drawn, 2 reused)" in status.inner_text()
        assert cell(page, 1, 2).inner_text().strip() == "40"
        assert len(web.llm.requests) == asked  # a hand edit asks no LLM
        chat = page.locator("#lmd-chat").inner_text()
        assert "(edited the layout by hand)" in chat
        page.locator("#lmd-objects img").first.wait_for()
        if os.environ.get("LMD_WEB_SCREENSHOT"):  # the README's picture: the edited turn
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=os.environ["LMD_WEB_SCREENSHOT"], full_page=True)

        # 3. Undo: back to the first picture and layout.
        page.locator("#lmd-undo").click()
        status.get_by_text("Turn 1 of 2").wait_for(timeout=30_000)
        page.wait_for_function(CELL_IS, arg=[1, 2, "240"])
        shot = tmp_path / "web-undone.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

    hosts = {urlsplit(u).hostname for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, sorted(u for u in requests if "127.0.0.1" not in u)
    print(f"\nApply -> new picture in the browser: {apply_to_picture:.2f} s (random:tiny)")

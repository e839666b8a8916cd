"""Time from pressing Apply to the new picture, in a real browser, on `lmd web --model random:tiny`.

    python3 -m tests.web_apply_time [--repeats 3] [-- extra lmd web options]

Starts `lmd web` (a subprocess, default settings: 50 steps, SAM) against the scripted loopback
LLM, asks for a picture in words, then moves one box by hand and presses Apply `--repeats`
times (every object reused), and resizes one box (one object drawn afresh). Prints each time
as the browser saw it: click on Apply until the new picture is on the page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.fixtures_llm import TEST_API_KEY, TEST_MODEL, ScriptedLLMServer
from tests.test_web_browser import CELL_IS, CHROMIUM_ARGS, cell, picture_src
from tests.web_server import CAT_DOG, free_port

ROOT = Path(__file__).resolve().parents[1]


def edit_cell(page, row: int, col: int, value: str) -> None:
    cell(page, row, col).dblclick()
    page.get_by_label("Edit cell").press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    page.wait_for_function(CELL_IS, arg=[row, col, value])


def apply_and_time(page, turn: int) -> float:
    before = picture_src(page)
    started = time.perf_counter()
    page.locator("#lmd-apply").click()
    page.locator("#lmd-status").get_by_text(f"Turn {turn} of {turn}").wait_for(timeout=600_000)
    page.wait_for_function(
        "src => document.querySelector('#lmd-picture img')?.getAttribute('src') !== src",
        arg=before,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more `lmd web` options")
    args = parser.parse_args()
    llm = ScriptedLLMServer()
    llm.enqueue(CAT_DOG)
    port = free_port()
    env = dict(
        os.environ, LMD_LLM=TEST_MODEL, LMD_LLM_BASE_URL=llm.url, OPENAI_API_KEY=TEST_API_KEY,
        LMD_CACHE_DIR=tempfile.mkdtemp(),
    )  # fmt: skip
    command = ["lmd", "web", "--port", str(port), "--model", "random:tiny", *args.extra]
    server = subprocess.Popen(
        [sys.executable, "-m", *command], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        while "open http" not in (line := server.stderr.readline()):
            if server.poll() is not None:
                raise SystemExit(f"lmd web stopped: {line}")
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                tempfile.mkdtemp(), headless=True, args=CHROMIUM_ARGS,
                executable_path=os.environ.get("LMD_CHROMIUM") or shutil.which("chromium"),
            )  # fmt: skip
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            box = page.get_by_label("What to draw or change")
            box.fill("a cat and a dog")
            started = time.perf_counter()
            box.press("Enter")
            page.locator("#lmd-status").get_by_text("Turn 1 of 1").wait_for(timeout=600_000)
            first = time.perf_counter() - started
            moves = []
            for i in range(args.repeats):
                edit_cell(page, 1, 2, str(40 + 40 * (i % 2)))  # the dog's y
                moves.append(apply_and_time(page, i + 2))
            edit_cell(page, 1, 3, "120")  # the dog's w: drawn afresh
            resize = apply_and_time(page, args.repeats + 2)
            context.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
        llm.stop()
    print(f"command: {' '.join(command)}")
    print(f"first picture (LLM + model load + 2 objects drawn): {first:.2f} s")
    print(f"Apply, one box moved (0 drawn, 2 reused): {', '.join(f'{t:.2f}' for t in moves)} s; "
          f"median {statistics.median(moves):.2f} s")  # fmt: skip
    print(f"Apply, one box resized (1 drawn, 1 reused): {resize:.2f} s")


if __name__ == "__main__":
    main()

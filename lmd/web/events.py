"""What each part of the page does: the actions (through `Handlers`) and the two-way sync of
the boxes drawn on the picture with the table.

Pictures wait in the pool's line (not Gradio's queue), which tells each where it stands and
lets Stop take it out; their progress shows on the status line, so the picture and the
conversation stay in view. Every other action answers at once. When
an action fails, its message is a toast and stays in the conversation and the status line
(`Handlers.failed` shows it; what the person typed stays, to fix and try again).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from lmd.web.boxes import editor_value, rows_after_drawing
from lmd.web.handlers import Handlers, friendly
from lmd.web.page import Page
from lmd.web.views import EDITED, NEW_SEED, table_cells

QUICK = {"concurrency_limit": None, "show_progress": "hidden"}
DRAG_FIRST = """() => {
  const tries = setInterval(() => {
    const drag = document.querySelector('#lmd-boxes button[aria-label="Drag boxes"]');
    if (drag) { drag.click(); clearInterval(tries); }
  }, 100);
  setTimeout(() => clearInterval(tries), 20000);
}"""
"""The box editor starts out drawing new boxes when it has none; a person who then gets a
layout expects to drag its boxes, so it starts in its drag mode (its box tool draws)."""
PRIVATE = {"api_visibility": "private"}


def asked_words(ws: Any, words: str | None, *_: Any) -> str | None:
    return words


def asked_edit(*_: Any) -> str:
    return EDITED


def asked_new_seed(*_: Any) -> str:
    return NEW_SEED


def asked_nothing(*_: Any) -> None:
    return None


def drawn_to_table(rows: Any, drawn: dict[str, Any] | None) -> Any:
    """The table once the boxes a person dragged, drew or deleted are read into it."""
    boxes = (drawn or {}).get("boxes") or []
    changed = rows_after_drawing(table_cells(rows), boxes)
    return gr.skip() if changed is None else changed


def table_to_drawn(rows: Any, drawn: dict[str, Any] | None) -> Any:
    """The boxes on the picture once a person typed in the table."""
    image = (drawn or {}).get("image")
    return gr.skip() if image is None else editor_value(table_cells(rows), image)


def wire(demo: gr.Blocks, page: Page, h: Handlers) -> None:
    """Attach every action of `page` (in `demo`) to `h`."""
    talk, picture, layout = page.talk, page.picture, page.layout
    state, show, view, settings = page.state, picture.show_boxes, page.view, page.settings.inputs
    render = {
        "concurrency_limit": None, "concurrency_id": "render",
        "show_progress_on": [picture.status],
    }  # fmt: skip

    def shown_after_failure(event: Any) -> None:
        event.failure(h.failed, [state], [state, talk.chat, picture.status], **QUICK, **PRIVATE)

    def on_send(
        ws, words, llm, own_model, own_url, own_key, method, steps, seed, sam, show_boxes,
        request: gr.Request, progress=gr.Progress(),
    ):  # fmt: skip
        values = (llm, own_model, own_url, own_key, method, steps, seed, sam)
        return h.send(ws, words, values, show_boxes, progress, request.session_hash)

    def on_apply(
        ws, rows, background, negative, llm, own_model, own_url, own_key, method, steps,
        seed, sam, show_boxes, request: gr.Request, progress=gr.Progress(),
    ):  # fmt: skip
        values = (llm, own_model, own_url, own_key, method, steps, seed, sam)
        return h.apply(
            ws, rows, background, negative, values, show_boxes, progress, request.session_hash
        )

    def on_new_seed(
        ws, llm, own_model, own_url, own_key, method, steps, seed, sam, show_boxes,
        request: gr.Request, progress=gr.Progress(),
    ):  # fmt: skip
        values = (llm, own_model, own_url, own_key, method, steps, seed, sam)
        return h.new_seed(ws, values, show_boxes, progress, request.session_hash)

    def on_open(ws, upload, llm, own_model, own_url, own_key, method, steps, seed, sam, show):
        values = (llm, own_model, own_url, own_key, method, steps, seed, sam)
        return h.open(ws, upload, values, show)

    def on_stop(request: gr.Request) -> None:
        h.stop(request.session_hash)

    def on_jump(ws, show_boxes, evt: gr.SelectData):
        return h.jump(ws, show_boxes, evt.index)

    def button(fn: Any) -> Any:
        return friendly(fn, asked=asked_nothing)

    # The page's WebSession exists from the start, so a first action that fails can say so.
    demo.load(h.session, [state], [state], **QUICK, **PRIVATE)
    demo.load(None, js=DRAG_FIRST)
    show.change(friendly(h.refresh), [state, show], view, api_name="refresh", **QUICK)
    page.settings.consistent.change(
        friendly(h.set_consistent), [state, page.settings.consistent], [state],
        api_name="consistent", **QUICK,
    )  # fmt: skip
    for event in [
        gr.on(
            [talk.send.click, talk.text.submit], friendly(on_send, asked=asked_words),
            [state, talk.text, *settings, show], [*view, talk.text], api_name="send", **render,
        ),
        layout.apply.click(
            friendly(on_apply, asked=asked_edit),
            [state, layout.table, layout.background, layout.negative, *settings, show], view,
            api_name="apply", **render,
        ),
        talk.reroll.click(
            friendly(on_new_seed, asked=asked_new_seed), [state, *settings, show], view,
            api_name="new_seed", **render,
        ),
        talk.undo.click(button(h.undo), [state, show], view, api_name="undo", **QUICK),
        talk.redo.click(button(h.redo), [state, show], view, api_name="redo", **QUICK),
        talk.restart.click(
            button(h.start_over), [state, show], [*view, talk.text], api_name="start_over",
            **QUICK,
        ),
        picture.strip.select(button(on_jump), [state, show], view, **QUICK, **PRIVATE),
        picture.upload.upload(
            button(on_open), [state, picture.upload, *settings, show], view, api_name="open",
            **QUICK,
        ),
    ]:  # fmt: skip
        shown_after_failure(event)

    talk.stop.click(on_stop, None, None, api_name="stop", queue=False, show_progress="hidden")

    # The boxes on the picture and the table show one layout: an edit in either shows in both.
    sync = {"trigger_mode": "always_last", **QUICK, **PRIVATE}
    layout.editor.change(drawn_to_table, [layout.table, layout.editor], [layout.table], **sync)
    layout.table.input(table_to_drawn, [layout.table, layout.editor], [layout.editor], **sync)

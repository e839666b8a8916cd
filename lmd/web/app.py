"""`build_app`: the one-screen Gradio page (chat, picture, layout table) and `launch`.

Nothing on the page loads from outside the machine: analytics are off, the theme uses the
fonts Gradio ships, and there are no share links.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from lmd.api import RenderSettings
from lmd.controller.methods import method_names
from lmd.web.handlers import Handlers, PlannerFactory, friendly
from lmd.web.pool import RenderPool
from lmd.web.views import COLUMNS, canvas_text, status_text

TITLE = "lmd: talk to a picture"
INTRO = (
    "Say what to draw, in any language; then say what to change, or fix the layout by hand "
    "in the table and press **Apply** (no LLM is asked). Undo and redo step through the turns."
)
CSS = """
.lmd-status { min-height: 4.5em; }
#lmd-chat button[aria-label="Clear"] { display: none; }
footer { display: none !important; }
"""
"""Clearing the chat would not clear the conversation (Start over does): its button is hidden."""


def theme() -> gr.themes.Base:
    """Gradio's Soft look with the fonts Gradio ships (no font server is asked)."""
    local = gr.themes.LocalFont
    return gr.themes.Soft(
        primary_hue="indigo",
        font=[local("IBM Plex Sans", weights=(400, 600)), "ui-sans-serif", "sans-serif"],
        font_mono=[local("IBM Plex Mono", weights=(400, 600)), "ui-monospace", "monospace"],
    )


@dataclass
class Defaults:
    """What the settings accordion starts with (the command line's options)."""

    llm: str = ""
    llm_base_url: str = ""
    seed: int | None = None


def build_app(handlers: Handlers, defaults: Defaults | None = None) -> gr.Blocks:
    """The page; renders go through the queue, as many at once as the handlers' pool has slots."""
    d = defaults or Defaults()
    h = handlers
    concurrency = handlers.pool.slots
    quick = {"concurrency_limit": None, "show_progress": "hidden"}
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        state = gr.State(None, delete_callback=lambda ws: ws.close() if ws else None)
        gr.Markdown(f"## {TITLE}\n{INTRO}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=300):
                chat = gr.Chatbot(
                    label="Conversation",
                    height=430,
                    feedback_options=None,
                    buttons=[],
                    elem_id="lmd-chat",
                )
                text = gr.Textbox(
                    label="What to draw or change",
                    placeholder="a cat to the left of a dog / move the dog up / make it night",
                    lines=1,
                    max_lines=4,
                )
                send = gr.Button("Send", variant="primary")
                with gr.Row():
                    undo = gr.Button("Undo", size="sm", interactive=False, elem_id="lmd-undo")
                    redo = gr.Button("Redo", size="sm", interactive=False)
                    reroll = gr.Button("New seed", size="sm", interactive=False)
                    restart = gr.Button("Start over", size="sm")
            with gr.Column(scale=5, min_width=360):
                image = gr.Image(
                    label="Picture", type="pil", format="png", interactive=False, height=430,
                    buttons=["download", "fullscreen"], elem_id="lmd-picture",
                )  # fmt: skip
                boxes = gr.Checkbox(label="Draw the layout boxes over the picture", value=True)
                status = gr.Markdown(
                    status_text(None),
                    elem_classes="lmd-status",
                    elem_id="lmd-status",
                )
                strip = gr.Gallery(
                    label="Turns (click one to go back to it)", columns=8, rows=1, height=120,
                    allow_preview=False, object_fit="cover", fit_columns=False, buttons=[],
                    format="png", elem_classes="lmd-strip", elem_id="lmd-turns",
                )  # fmt: skip
                with gr.Row():
                    picture_file = gr.DownloadButton(
                        "Download picture", size="sm", interactive=False
                    )
                    session_file = gr.DownloadButton(
                        "Download session", size="sm", interactive=False
                    )
                    upload = gr.UploadButton(
                        "Open a session", size="sm", file_types=[".json"], type="filepath"
                    )
            with gr.Column(scale=4, min_width=300):
                gr.Markdown("### Layout")
                canvas = gr.Markdown(canvas_text(None))
                table = gr.Dataframe(
                    headers=COLUMNS, datatype=["str", "number", "number", "number", "number"],
                    type="array", interactive=True, column_count=len(COLUMNS),
                    row_count=1, label="Objects (name and box)", show_label=False,
                    elem_id="lmd-layout",
                )  # fmt: skip
                background = gr.Textbox(label="Background", lines=1)
                negative = gr.Textbox(label="Negative prompt", lines=1)
                apply = gr.Button(
                    "Apply: draw this layout (no LLM)", variant="primary", elem_id="lmd-apply"
                )
        with gr.Accordion("Objects, each drawn on its own", open=False):
            objects = gr.Gallery(
                label="Per-object pictures (before they are composed)", columns=6, height=210,
                object_fit="contain", fit_columns=False, format="png", elem_id="lmd-objects",
            )  # fmt: skip
        with gr.Accordion("Settings", open=False):
            with gr.Row():
                llm = gr.Textbox(label="LLM model (litellm)", value=d.llm, placeholder="default")
                base_url = gr.Textbox(
                    label="LLM base URL", value=d.llm_base_url, placeholder="provider default"
                )
            with gr.Row():
                method = gr.Dropdown(
                    list(method_names()), value=handlers.render.method, label="Method"
                )  # fmt: skip
                steps = gr.Number(
                    value=handlers.render.steps, label="Steps (blank: 50)", precision=0
                )
                seed = gr.Number(value=d.seed, label="Seed of a new conversation (blank: random)")
                sam = gr.Checkbox(value=handlers.render.sam, label="Refine masks with SAM")
                consistent = gr.Checkbox(
                    value=True, label="Keep the look of objects that recur across turns",
                    elem_id="lmd-consistent",
                )  # fmt: skip

        settings = [llm, base_url, method, steps, seed, sam]
        # Renders queue (at most `concurrency` at once); their progress and errors show on the
        # status line, so the picture and the conversation stay in view.
        render = {
            "concurrency_limit": concurrency, "concurrency_id": "render",
            "show_progress_on": [status],
        }  # fmt: skip
        view = [
            state, chat, image, status, table, background, negative, canvas, strip, objects,
            picture_file, session_file, undo, redo, reroll,
        ]  # fmt: skip

        @friendly
        def on_send(
            ws, words, llm, base_url, method, steps, seed, sam, show_boxes,
            progress=gr.Progress(),
        ):  # fmt: skip
            return h.send(ws, words, llm, base_url, method, steps, seed, sam, show_boxes, progress)

        @friendly
        def on_apply(
            ws, rows, background, negative, llm, base_url, method, steps, seed, sam, show_boxes,
            progress=gr.Progress(),
        ):  # fmt: skip
            return h.apply(
                ws, rows, background, negative, llm, base_url, method, steps, seed, sam,
                show_boxes, progress,
            )  # fmt: skip

        @friendly
        def on_new_seed(
            ws, llm, base_url, method, steps, seed, sam, show_boxes, progress=gr.Progress()
        ):
            return h.new_seed(ws, llm, base_url, method, steps, seed, sam, show_boxes, progress)

        @friendly
        def on_jump(ws, show_boxes, evt: gr.SelectData):
            return h.jump(ws, show_boxes, evt.index)

        gr.on(
            [send.click, text.submit], on_send, [state, text, *settings, boxes], [*view, text],
            api_name="send", **render,
        )  # fmt: skip
        apply.click(
            on_apply, [state, table, background, negative, *settings, boxes], view,
            api_name="apply", **render,
        )  # fmt: skip
        reroll.click(on_new_seed, [state, *settings, boxes], view, api_name="new_seed", **render)
        undo.click(friendly(h.undo), [state, boxes], view, api_name="undo", **quick)
        redo.click(friendly(h.redo), [state, boxes], view, api_name="redo", **quick)
        restart.click(
            friendly(h.start_over), [state, boxes], [*view, text], api_name="start_over", **quick
        )  # fmt: skip
        strip.select(on_jump, [state, boxes], view, api_visibility="private", **quick)
        boxes.change(friendly(h.refresh), [state, boxes], view, api_name="refresh", **quick)
        consistent.change(
            friendly(h.set_consistent), [state, consistent], [state], api_name="consistent",
            **quick,
        )  # fmt: skip
        upload.upload(
            friendly(h.open), [state, upload, *settings, boxes], view, api_name="open", **quick
        )  # fmt: skip
    demo.queue(default_concurrency_limit=None)
    return demo


def make_handlers(
    root: str | Path,
    render: RenderSettings,
    planner: PlannerFactory,
    *,
    concurrency: int = 1,
    remove_on_close: bool = False,
) -> Handlers:
    """The page's actions, with a pool of at most `concurrency` renderers at work."""
    return Handlers(
        Path(root), RenderPool(concurrency), render, planner, remove_on_close=remove_on_close
    )


def launch(
    demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, root: str | Path | None = None
) -> str:
    """Serve `demo` on `host`:`port` in the background (no share link); returns the local URL.

    `root` is the folder the sessions' files are in (Gradio serves files only from there,
    its own cache and the temporary folder). `demo.block_thread()` waits; `demo.close()` stops.
    """
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        quiet=True,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        prevent_thread_lock=True,
        allowed_paths=[str(root)] if root is not None else None,
        theme=theme(),
        css=CSS,
        footer_links=[],
    )
    return url

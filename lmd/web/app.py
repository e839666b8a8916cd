"""`build_app`: the one-screen Gradio page (chat, picture, layout) and `launch`.

The page's parts are built in `lmd.web.page`, what they do is wired in `lmd.web.events`.
Nothing on the page loads from outside the machine: analytics are off, the theme uses the
fonts Gradio ships (the box editor's too), and there are no share links.
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.routes

from lmd.api import RenderSettings
from lmd.web import events, page
from lmd.web.handlers import Handlers
from lmd.web.limits import WebLimits
from lmd.web.llms import LlmChoices
from lmd.web.page import Defaults
from lmd.web.pool import RenderPool

__all__ = ["Defaults", "build_app", "launch", "make_handlers"]

TITLE = "lmd: talk to a picture"
INTRO = (
    "Say what to draw, in any language; then say what to change, or fix the layout by hand "
    "(drag its boxes on the picture, or type in the table) and press **Apply** (no LLM is "
    "asked). Undo and redo step through the turns."
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


CACHE_SWEEPS = 6
"""Gradio's cache is swept this many times per `cache_seconds` (files older than that go)."""


def build_app(handlers: Handlers, defaults: Defaults | None = None) -> gr.Blocks:
    """The page: the conversation, the picture and the layout side by side, the per-object
    pictures and the settings below. Pictures wait for a renderer in the handlers' pool (its
    own line, with a measured estimate and Stop), not in Gradio's queue; Gradio's copies of
    files are deleted once they are `handlers.limits.cache_seconds` old."""
    age = handlers.limits.cache_seconds
    sweep = (max(1, age // CACHE_SWEEPS), age)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=sweep) as demo:
        state = gr.State(None, delete_callback=lambda ws: ws.close() if ws else None)
        gr.Markdown(f"## {TITLE}\n{INTRO}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=300):
                talk = page.talk_column()
            with gr.Column(scale=5, min_width=360):
                picture = page.picture_column()
            with gr.Column(scale=5, min_width=360):
                layout = page.layout_column()
        objects = page.objects_accordion()
        settings = page.settings_accordion(
            handlers.render, defaults or Defaults(), handlers.llms, handlers.limits
        )
        events.wire(demo, page.Page(state, talk, picture, layout, objects, settings), handlers)
    demo.queue(default_concurrency_limit=None)
    return demo


def make_handlers(
    root: str | Path,
    render: RenderSettings,
    llms: LlmChoices,
    *,
    concurrency: int = 1,
    limits: WebLimits | None = None,
    remove_on_close: bool = False,
) -> Handlers:
    """The page's actions, with a pool of at most `concurrency` renderers at work."""
    limits = limits or WebLimits()
    pool = RenderPool(concurrency, max_waiting=limits.max_waiting)
    return Handlers(
        Path(root), pool, render, llms, limits=limits, remove_on_close=remove_on_close
    )  # fmt: skip


def quiet_component_files() -> None:
    """Drop the line Gradio 6.31 prints to stdout for each file of a custom component (the
    box editor's) that a browser loads: `id=..., environment=client, ...`, a debug print left
    in its `custom_component_path` route. Its other prints are kept."""
    routes = gradio.routes
    if getattr(routes, "print", builtins.print) is not builtins.print:
        return

    def print_unless_component_file(*args: Any, **kwargs: Any) -> None:
        if not (args and str(args[0]).startswith("id=") and "environment=" in str(args[0])):
            builtins.print(*args, **kwargs)

    routes.print = print_unless_component_file  # a module global: builtins.print is untouched


def launch(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    root: str | Path | None = None,
    max_upload_bytes: int | None = None,
) -> str:
    """Serve `demo` on `host`:`port` in the background (no share link); returns the local URL.

    `root` is the folder the sessions' files are in (Gradio serves files only from there,
    its own cache and the temporary folder); an upload over `max_upload_bytes` is refused.
    `demo.close()` stops it.
    """
    quiet_component_files()
    _, url, _ = demo.launch(
        max_file_size=max_upload_bytes,
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

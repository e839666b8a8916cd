"""The page's parts, each built by one function: the conversation, the picture, the layout
(its boxes drawn on the picture, and the table), the per-object pictures and the settings.

`Page` holds them all and lists what every action shows (`Page.view`, in `View` order);
`lmd.web.events` says what each button does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio_image_annotation import image_annotator

from lmd import models
from lmd.api import RenderSettings
from lmd.controller.config import LMDConfig
from lmd.controller.methods import method_names
from lmd.settings import SETTINGS
from lmd.web.boxes import canvas, editor_value
from lmd.web.limits import WebLimits
from lmd.web.llms import LlmChoices
from lmd.web.views import COLUMNS, canvas_text, status_text

PICTURE_HEIGHT = 430


@dataclass
class Defaults:
    """What the settings accordion starts with (the command line's options)."""

    seed: int | None = None


@dataclass
class Talk:
    """The conversation and its buttons."""

    chat: gr.Chatbot
    text: gr.Textbox
    send: gr.Button
    stop: gr.Button
    undo: gr.Button
    redo: gr.Button
    reroll: gr.Button
    restart: gr.Button


@dataclass
class Picture:
    """The current picture, the status line, the turns strip and the files."""

    image: gr.Image
    show_boxes: gr.Checkbox
    status: gr.Markdown
    strip: gr.Gallery
    picture_file: gr.DownloadButton
    session_file: gr.DownloadButton
    upload: gr.UploadButton


@dataclass
class LayoutEditor:
    """The layout: its boxes on the picture (drag, resize, draw, delete) and as a table."""

    editor: Any  # gradio_image_annotation.image_annotator
    canvas: gr.Markdown
    table: gr.Dataframe
    background: gr.Textbox
    negative: gr.Textbox
    apply: gr.Button


@dataclass
class Settings:
    """The settings accordion, in the order the actions take them (`handlers.FIELDS`)."""

    llm: gr.Dropdown
    own_model: gr.Textbox
    own_url: gr.Textbox
    own_key: gr.Textbox
    method: gr.Dropdown
    steps: gr.Textbox
    seed: gr.Textbox
    sam: gr.Checkbox
    consistent: gr.Checkbox
    """Not a drawing action's input: its change reaches the page's conversation at once."""

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [
            self.llm, self.own_model, self.own_url, self.own_key, self.method, self.steps,
            self.seed, self.sam,
        ]  # fmt: skip


@dataclass
class Page:
    """Every part of the page, and the browser session's `WebSession` (`state`)."""

    state: gr.State
    talk: Talk
    picture: Picture
    layout: LayoutEditor
    objects: gr.Gallery
    settings: Settings

    @property
    def view(self) -> list[gr.components.Component]:
        """What every action shows, in the order `lmd.web.handlers.View.values` gives it."""
        p, t, lay = self.picture, self.talk, self.layout
        return [
            self.state, t.chat, p.image, p.status, lay.table, lay.background, lay.negative,
            lay.canvas, p.strip, self.objects, p.picture_file, p.session_file, lay.editor,
            t.undo, t.redo, t.reroll,
        ]  # fmt: skip


def talk_column() -> Talk:
    chat = gr.Chatbot(
        label="Conversation", height=PICTURE_HEIGHT, feedback_options=None, buttons=[],
        elem_id="lmd-chat",
    )  # fmt: skip
    text = gr.Textbox(
        label="What to draw or change",
        placeholder="a cat to the left of a dog / move the dog up / make it night",
        lines=1,
        max_lines=4,
    )
    with gr.Row():
        send = gr.Button("Send", variant="primary", scale=3)
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="lmd-stop")
    with gr.Row():
        undo = gr.Button("Undo", size="sm", interactive=False, elem_id="lmd-undo")
        redo = gr.Button("Redo", size="sm", interactive=False)
        reroll = gr.Button("New seed", size="sm", interactive=False)
        restart = gr.Button("Start over", size="sm")
    return Talk(chat, text, send, stop, undo, redo, reroll, restart)


def picture_column() -> Picture:
    gr.Markdown("### Picture")
    # No label on the picture: Gradio floats it over the top-left corner, where the first
    # box's name is drawn.
    image = gr.Image(
        label="Picture", show_label=False, type="pil", format="png", interactive=False,
        height=PICTURE_HEIGHT, buttons=["download", "fullscreen"], elem_id="lmd-picture",
    )  # fmt: skip
    show_boxes = gr.Checkbox(label="Draw the layout boxes over the picture", value=True)
    status = gr.Markdown(status_text(None), elem_classes="lmd-status", elem_id="lmd-status")
    strip = gr.Gallery(
        label="Turns (click one to go back to it)", columns=8, rows=1, height=120,
        allow_preview=False, object_fit="cover", fit_columns=False, buttons=[],
        format="png", elem_classes="lmd-strip", elem_id="lmd-turns",
    )  # fmt: skip
    with gr.Row():
        picture_file = gr.DownloadButton("Download picture", size="sm", interactive=False)
        session_file = gr.DownloadButton("Download session", size="sm", interactive=False)
        upload = gr.UploadButton("Open a session", size="sm", file_types=[".json"], type="filepath")
    return Picture(image, show_boxes, status, strip, picture_file, session_file, upload)


def layout_column() -> LayoutEditor:
    gr.Markdown("### Layout")
    editor = image_annotator(
        editor_value([], canvas(None, 512, 512)),
        label="The layout's boxes on the picture", show_label=False, image_type="filepath",
        sources=[], show_download_button=False, show_share_button=False,
        show_clear_button=False, show_remove_button=True, boxes_alpha=0.15, box_min_size=8,
        elem_id="lmd-boxes",
    )  # fmt: skip
    help_text = gr.Markdown(canvas_text(None))
    # A fixed column count: the cell menu offers no columns to add or delete (Gradio 6 has
    # `column_limits`, but does not implement it yet).
    table = gr.Dataframe(
        headers=COLUMNS, datatype=["str", "number", "number", "number", "number"],
        type="array", interactive=True, column_count=(len(COLUMNS), "fixed"), row_count=1,
        label="Objects (name and box)", show_label=False, elem_id="lmd-layout",
    )  # fmt: skip
    background = gr.Textbox(label="Background", lines=1)
    negative = gr.Textbox(label="Negative prompt", lines=1)
    apply = gr.Button("Apply: draw this layout (no LLM)", variant="primary", elem_id="lmd-apply")
    return LayoutEditor(editor, help_text, table, background, negative, apply)


def objects_accordion() -> gr.Gallery:
    with gr.Accordion("Objects, each drawn on its own", open=False):
        return gr.Gallery(
            label="Per-object pictures (before they are composed)", columns=6, height=210,
            object_fit="contain", fit_columns=False, format="png", elem_id="lmd-objects",
        )  # fmt: skip


def settings_accordion(
    render: RenderSettings, defaults: Defaults, llms: LlmChoices, limits: WebLimits
) -> Settings:
    """The settings of the next turn: the LLMs this server offers (and, where it allows, the
    visitor's own server and key), method, steps, seed and SAM. Steps and seed are text boxes:
    a blank one means the default (a number box turns blank into 0 as soon as it is shown)."""
    default_steps = models.default_steps(render.model_id) or LMDConfig().steps
    with gr.Accordion("Settings", open=False, elem_id="lmd-settings"):
        with gr.Row():
            llm = gr.Dropdown(llms.labels, value=llms.labels[0], label="LLM", scale=2)
            own_model = gr.Textbox(
                "", label="Your server's model", visible=llms.visitor_servers,
                placeholder="qwen2.5-7b-instruct",
            )  # fmt: skip
            own_url = gr.Textbox(
                "", label="Your server's base URL (OpenAI-compatible)",
                visible=llms.visitor_servers, placeholder="http://host:8000/v1",
            )  # fmt: skip
            own_key = gr.Textbox(
                "", label="Its API key (used for this request only, never stored)",
                type="password", visible=llms.visitor_servers, placeholder="none",
            )  # fmt: skip
        with gr.Row():
            method = gr.Dropdown(
                list(method_names()), value=render.method, label=SETTINGS["method"].label
            )
            steps = gr.Textbox(
                value=_text(render.steps), placeholder=str(default_steps),
                label=f"{SETTINGS['steps'].label} (blank: {default_steps}; at most "
                f"{limits.max_steps})",
            )  # fmt: skip
            seed = gr.Textbox(
                value=_text(defaults.seed), label="Seed of a new conversation (blank: random)",
                placeholder="random", elem_id="lmd-seed",
            )  # fmt: skip
            sam = gr.Checkbox(value=render.sam, label=SETTINGS["sam"].label)
            consistent = gr.Checkbox(
                value=True, label="Keep the look of objects that recur across turns",
                elem_id="lmd-consistent",
            )  # fmt: skip
    return Settings(llm, own_model, own_url, own_key, method, steps, seed, sam, consistent)


def _text(number: int | None) -> str:
    return "" if number is None else str(number)

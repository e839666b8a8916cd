"""What each button does: run the turn on the page's `WebSession`, then say what to show.

Every handler returns the whole view (`View`), so the page always shows the current turn.
Failures become one readable `gr.Error` in the page; the conversation is left as it was, and
the failure is kept on the `WebSession` for the conversation to show.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from lmd.api import RenderSettings
from lmd.conversation import Turn
from lmd.layouts import LmdError
from lmd.layouts.errors import one_line as _one_line
from lmd.layouts.seeds import is_seed, seed_problem
from lmd.layouts.words import counted
from lmd.settings import SETTINGS
from lmd.web import boxes, views
from lmd.web.limits import WebLimits
from lmd.web.llms import LlmChoices
from lmd.web.pool import RenderPool
from lmd.web.progress import PhaseProgress
from lmd.web.served import captioned_files, image_file
from lmd.web.state import BusyError, Failure, TurnSettings, WebSession
from lmd.web.stop import STOPPED, RenderStopped, Stops

log = logging.getLogger("lmd.web")
WEB_LIMIT = 400
"""Characters of an error message the page shows."""

FIELDS = ("llm", "own_model", "own_url", "own_key", "method", "steps", "seed", "sam")
"""The Settings fields each drawing action reads, in this order."""
_PATH = re.compile(r"(?<![\w:/.~<-])/(?:[^\s'\"/<>]+/)+([^\s'\"/<>]+)")


def hide_paths(text: str) -> str:
    """`text` with every absolute path cut to its last part: a page never shows where the
    server keeps files (URLs stay as they are)."""
    return _PATH.sub(r"\1", text)


def one_line(error: BaseException, limit: int = WEB_LIMIT) -> str:
    """`error` on one line for the page: no server paths, at most `limit` characters."""
    return _one_line(hide_paths(_one_line(error, None)), limit)


def failure_text(error: BaseException, name: str) -> str:
    """What the page says when `name` failed with `error`: one line, no traceback."""
    if isinstance(error, gr.Error):
        return one_line(ValueError(error.message))
    if isinstance(error, (LmdError, ValueError, OSError)):
        return one_line(error)
    log.exception("lmd web: %s failed", name)  # a bug: the details go to the server's log only
    return (
        f"something went wrong ({type(error).__name__}: {one_line(error)}); "
        "the server's log has the details"
    )


def friendly(
    fn: Callable[..., Any], asked: Callable[..., str | None] | None = None
) -> Callable[..., Any]:
    """Turn any failure of `fn` into one readable message in the page (no traceback there).

    An action (one given `asked`, which tells from `fn`'s arguments what the person asked, or
    None for a button) also keeps its failure on the page's `WebSession` (`fn`'s first
    argument), for the conversation to show until the next action.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        page = args[0] if asked is not None and args else None
        page = page if isinstance(page, WebSession) else None
        if page is not None:
            page.failure = None
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            message = failure_text(e, fn.__name__)
            if page is not None and not isinstance(e, BusyError):
                page.failure = Failure(asked(*args), message)
            raise gr.Error(message, print_exception=False) from None

    return wrapper


def _canvas(turn: Turn | None) -> Image.Image:
    """The picture under the box editor: the turn's, at its layout's size (or a blank one)."""
    if turn is None:
        return boxes.canvas(None, *views.DEFAULT_CANVAS)
    return boxes.canvas(turn.image, turn.layout.width, turn.layout.height)


def _file_or_none(image: Image.Image | None) -> str | None:
    return image_file(image) if image is not None else None


@dataclass
class View:
    """Everything the page shows for a session's current turn, in `Page.view` order."""

    session: WebSession
    show_boxes: bool

    def chat(self) -> list[dict[str, str]]:
        conversation = self.session.conversation
        turns = conversation.turns if conversation is not None else []
        return views.chat_messages(turns, self.session.failure)

    def status(self) -> str:
        ws, turn = self.session, self.session.current
        status = views.status_text(turn, ws.notes, ws.failure)
        if turn is None or ws.conversation is None:
            return status
        turns = ws.conversation.session
        return f"**Turn {turns.cursor + 1} of {len(turns.turns)}**: {status}"

    def values(self) -> tuple:
        ws, turn = self.session, self.session.current
        conversation = ws.conversation
        layout = turn.layout if turn is not None else None
        turns = conversation.session if conversation is not None else None
        session_file = ws.session_file
        picture_file = ws.picture_file(turn)
        return (
            ws,
            self.chat(),
            _file_or_none(views.picture(turn, self.show_boxes)),
            self.status(),
            views.table_rows(layout),
            layout.background if layout is not None else "",
            layout.negative if layout is not None else "",
            views.canvas_text(layout),
            captioned_files(views.thumbnails(turns)) if turns is not None else [],
            captioned_files(ws.object_pictures(turn)),
            gr.DownloadButton(value=picture_file, interactive=picture_file is not None),
            gr.DownloadButton(
                value=str(session_file) if session_file else None,
                interactive=session_file is not None,
            ),
            boxes.editor_value(views.table_rows(layout), image_file(_canvas(turn))),
            gr.Button(interactive=conversation is not None and conversation.can_undo),
            gr.Button(interactive=conversation is not None and conversation.can_redo),
            gr.Button(interactive=turn is not None),
        )


class Handlers:
    """The page's actions over per-session `WebSession`s, a shared pool and the LLM choices."""

    def __init__(
        self,
        root: Path,
        pool: RenderPool,
        render: RenderSettings,
        llms: LlmChoices,
        *,
        limits: WebLimits | None = None,
        remove_on_close: bool = False,
    ) -> None:
        self.root = Path(root)
        self.pool = pool
        self.render = render
        self.llms = llms
        self.limits = limits or WebLimits()
        self.remove_on_close = remove_on_close
        self.stops = Stops()

    # --- settings --------------------------------------------------------------------------

    def session(self, state: WebSession | None) -> WebSession:
        if state is None:
            state = WebSession(self.root, self.pool, remove_on_close=self.remove_on_close)
        return state

    def settings(self, values: Sequence[Any]) -> TurnSettings:
        """The Settings fields (`FIELDS` order), checked by the settings' own rules and this
        server's limits; errors name the field as the page labels it."""
        llm, own_model, own_url, own_key, method, steps, seed, sam = values
        steps, seed = _number(steps), _number(seed)
        render = self.render.replace(method=method, steps=steps, sam=bool(sam))
        for name, problem in render.problems().items():
            raise ValueError(f"{SETTINGS[name].label} {problem}")
        if render.steps is not None and render.steps > self.limits.max_steps:
            raise ValueError(
                f"{SETTINGS['steps'].label} must be at most {self.limits.max_steps} on this "
                f"server but is {render.steps}"
            )
        if seed is not None and not is_seed(seed):
            raise ValueError(f"Seed {seed_problem(seed)}")
        planner = self.llms.planner(llm, own_model, own_url, own_key)
        return TurnSettings(render=render, planner=planner, seed=seed)

    # --- actions ---------------------------------------------------------------------------

    def send(self, state, text, values, show_boxes, progress, session: str = ""):
        ws = self.session(state)
        if not (text or "").strip():
            raise ValueError("say what to draw or what to change first")
        settings = self.settings(values)
        with self._drawing(ws, progress, session) as report:
            report.planning()
            ws.send(text, settings, progress=report)
            ws.notes = []
            text = ""
        return (*View(ws, show_boxes).values(), text)

    def apply(self, state, rows, background, negative, values, show_boxes, progress, session=""):
        ws = self.session(state)
        settings = self.settings(values)
        turn = ws.current
        canvas = (turn.layout.width, turn.layout.height) if turn is not None else (512, 512)
        cells = views.table_cells(rows)
        layout, notes = views.layout_from_table(cells, background, negative, *canvas)
        self.limits.check_layout(layout)
        with self._drawing(ws, progress, session) as report:
            ws.edit(layout, settings, progress=report)
            ws.notes = notes
        return View(ws, show_boxes).values()

    def new_seed(self, state, values, show_boxes, progress, session: str = ""):
        ws = self.session(state)
        settings = self.settings(values)
        with self._drawing(ws, progress, session) as report:
            ws.reroll(settings, progress=report)
            ws.notes = []
        return View(ws, show_boxes).values()

    def stop(self, session: str) -> None:
        """Stop this browser session's picture (waiting or being drawn), if there is one."""
        self.stops.stop(session)

    def undo(self, state, show_boxes):
        ws = self.session(state)
        with ws.busy(wait=False):
            if ws.undo() is None:
                raise ValueError("nothing to undo")
            ws.notes = []
        return View(ws, show_boxes).values()

    def redo(self, state, show_boxes):
        ws = self.session(state)
        with ws.busy(wait=False):
            if ws.redo() is None:
                raise ValueError("nothing to redo")
            ws.notes = []
        return View(ws, show_boxes).values()

    def jump(self, state, show_boxes, index: int):
        ws = self.session(state)
        with ws.busy(wait=False):
            ws.jump(index)
            ws.notes = []
        return View(ws, show_boxes).values()

    def start_over(self, state, show_boxes):
        ws = self.session(state)
        with ws.busy(wait=False):
            ws.start_over()
        return (*View(ws, show_boxes).values(), "")

    def open(self, state, upload, values, show_boxes):
        ws = self.session(state)
        if not upload:
            raise ValueError("choose a session.json file to open")
        settings = self.settings(values)
        with ws.busy(wait=False):
            ws.open(upload, settings, self.limits)
            turns = len(ws.conversation.turns)
            ws.notes = [
                f"Opened {Path(upload).name}: {counted(turns, 'turn')}. A session "
                "file keeps the layouts, not the pictures: the layout is shown; press Apply to "
                "draw it again."
            ]
        return View(ws, show_boxes).values()

    def set_consistent(self, state, on):
        """The checkbox: whether this page's next turns keep recurring objects' look."""
        ws = self.session(state)
        ws.consistent = bool(on)
        return ws

    def refresh(self, state, show_boxes):
        """Show the current turn again (the boxes toggle)."""
        return View(self.session(state), show_boxes).values()

    @contextmanager
    def _drawing(self, ws: WebSession, progress, session: str) -> Iterator[PhaseProgress]:
        """Hold the page's conversation for one picture (refused while another is drawn, or
        past the turn limit), with progress that Stop can end; a stop changes nothing."""
        with ws.busy(wait=False):
            if ws.conversation is not None:  # a new turn drops the undone ones
                self.limits.check_turns(len(ws.conversation.turns))
            with self.stops.watch(session) as flag:
                try:
                    yield PhaseProgress(progress, stop=flag)
                except RenderStopped:
                    ws.notes = [STOPPED]

    def failed(self, state):
        """After an action failed: the conversation and the status line with its failure
        (the table and the text box keep what the person typed, to fix and try again)."""
        view = View(self.session(state), show_boxes=False)
        return view.session, view.chat(), view.status()


def _number(value: Any) -> Any:
    """A number field's value: None when blank, an int when whole (the page sends floats)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # the rules say what is wrong with it
    return int(number) if number.is_integer() else number

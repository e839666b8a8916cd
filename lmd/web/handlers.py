"""What each button does: run the turn on the page's `WebSession`, then say what to show.

Every handler returns the whole view (`View`), so the page always shows the current turn.
Failures become one readable `gr.Error` in the page; the conversation is left as it was.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from lmd.api import RenderSettings
from lmd.layouts import LmdError
from lmd.layouts.errors import one_line
from lmd.layouts.seeds import is_seed, seed_problem
from lmd.layouts.words import counted
from lmd.settings import SETTINGS
from lmd.web import views
from lmd.web.pool import RenderPool
from lmd.web.progress import PhaseProgress
from lmd.web.state import TurnSettings, WebSession

log = logging.getLogger("lmd.web")
WEB_LIMIT = 400
"""Characters of an error message the page shows."""

PlannerFactory = Callable[[str | None, str | None], Any]
"""`factory(llm, llm_base_url)` -> a `lmd.prompts.Planner` (None: the command's default)."""


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any failure of `fn` into one readable message in the page (no traceback there)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (LmdError, ValueError, OSError) as e:
            raise gr.Error(one_line(e, WEB_LIMIT), print_exception=False) from None
        except Exception as e:  # a bug: the details go to the server's log only
            log.exception("lmd web: %s failed", fn.__name__)
            raise gr.Error(
                f"something went wrong ({type(e).__name__}: {one_line(e, WEB_LIMIT)}); "
                "the server's log has the details",
                print_exception=False,
            ) from None

    return wrapper


@dataclass
class View:
    """Everything the page shows for a session's current turn, in `OUTPUTS` order."""

    session: WebSession
    show_boxes: bool

    def values(self) -> tuple:
        ws, turn = self.session, self.session.current
        conversation = ws.conversation
        layout = turn.layout if turn is not None else None
        turns = conversation.session if conversation is not None else None
        number = (turns.cursor + 1, len(turns.turns)) if turns is not None else (0, 0)
        status = views.status_text(turn, ws.notes)
        if turn is not None:
            status = f"**Turn {number[0]} of {number[1]}**: {status}"
        session_file = ws.session_file
        picture_file = ws.picture_file(turn)
        return (
            ws,
            views.chat_messages(conversation.turns if conversation is not None else []),
            views.picture(turn, self.show_boxes),
            status,
            views.table_rows(layout),
            layout.background if layout is not None else "",
            layout.negative if layout is not None else "",
            views.canvas_text(layout),
            views.thumbnails(turns) if turns is not None else [],
            ws.object_pictures(turn),
            gr.DownloadButton(value=picture_file, interactive=picture_file is not None),
            gr.DownloadButton(
                value=str(session_file) if session_file else None,
                interactive=session_file is not None,
            ),
            gr.Button(interactive=conversation is not None and conversation.can_undo),
            gr.Button(interactive=conversation is not None and conversation.can_redo),
            gr.Button(interactive=turn is not None),
        )


class Handlers:
    """The page's actions over per-session `WebSession`s, a shared pool and a planner factory."""

    def __init__(
        self,
        root: Path,
        pool: RenderPool,
        render: RenderSettings,
        planner: PlannerFactory,
        *,
        remove_on_close: bool = False,
    ) -> None:
        self.root = Path(root)
        self.pool = pool
        self.render = render
        self.planner_factory = planner
        self.remove_on_close = remove_on_close
        self._planners: dict[tuple[str | None, str | None], Any] = {}
        self._planners_lock = threading.Lock()

    # --- settings --------------------------------------------------------------------------

    def session(self, state: WebSession | None) -> WebSession:
        if state is None:
            state = WebSession(self.root, self.pool, remove_on_close=self.remove_on_close)
        return state

    def planner(self, llm: str | None, base_url: str | None) -> Any:
        key = ((llm or "").strip() or None, (base_url or "").strip() or None)
        with self._planners_lock:
            if key not in self._planners:
                self._planners[key] = self.planner_factory(*key)
            return self._planners[key]

    def settings(self, llm, base_url, method, steps, seed, sam) -> TurnSettings:
        """The accordion's values, checked by the settings' own rules; errors name the field as
        the page labels it."""
        steps, seed = _number(steps), _number(seed)
        render = self.render.replace(method=method, steps=steps, sam=bool(sam))
        for name, problem in render.problems().items():
            raise ValueError(f"{SETTINGS[name].label} {problem}")
        if seed is not None and not is_seed(seed):
            raise ValueError(f"Seed {seed_problem(seed)}")
        return TurnSettings(render=render, planner=self.planner(llm, base_url), seed=seed)

    # --- actions ---------------------------------------------------------------------------

    def send(self, state, text, llm, base_url, method, steps, seed, sam, show_boxes, progress):
        ws = self.session(state)
        if not (text or "").strip():
            raise ValueError("say what to draw or what to change first")
        settings = self.settings(llm, base_url, method, steps, seed, sam)
        with ws.busy(wait=True):
            report = PhaseProgress(progress)
            report.planning()
            ws.send(text, settings, progress=report)
            ws.notes = []
        return (*View(ws, show_boxes).values(), "")

    def apply(self, state, rows, background, negative, *rest):
        *settings_values, show_boxes, progress = rest
        ws = self.session(state)
        settings = self.settings(*settings_values)
        turn = ws.current
        canvas = (turn.layout.width, turn.layout.height) if turn is not None else (512, 512)
        layout, notes = views.layout_from_table(_rows(rows), background, negative, *canvas)
        with ws.busy(wait=True):
            ws.edit(layout, settings, progress=PhaseProgress(progress))
            ws.notes = notes
        return View(ws, show_boxes).values()

    def new_seed(self, state, llm, base_url, method, steps, seed, sam, show_boxes, progress):
        ws = self.session(state)
        settings = self.settings(llm, base_url, method, steps, seed, sam)
        with ws.busy(wait=True):
            ws.reroll(settings, progress=PhaseProgress(progress))
            ws.notes = []
        return View(ws, show_boxes).values()

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

    def open(self, state, upload, llm, base_url, method, steps, seed, sam, show_boxes):
        ws = self.session(state)
        if not upload:
            raise ValueError("choose a session.json file to open")
        settings = self.settings(llm, base_url, method, steps, seed, sam)
        with ws.busy(wait=False):
            ws.open(upload, settings)
            turns = len(ws.conversation.turns)
            ws.notes = [
                f"Opened {Path(upload).name}: {counted(turns, 'turn')}. A session "
                "file keeps the layouts, not the pictures: the layout is shown; press Apply to "
                "draw it again."
            ]
        return View(ws, show_boxes).values()

    def refresh(self, state, show_boxes):
        """Show the current turn again (the boxes toggle)."""
        return View(self.session(state), show_boxes).values()


def _number(value: Any) -> Any:
    """A number field's value: None when blank, an int when whole (the page sends floats)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # the rules say what is wrong with it
    return int(number) if number.is_integer() else number


def _rows(table: Any) -> list[list[Any]]:
    """The table's rows, whichever form Gradio hands them in (list, DataFrame, dict)."""
    if table is None:
        return []
    if isinstance(table, dict):
        table = table.get("data", [])
    if hasattr(table, "values") and hasattr(table, "columns"):
        table = table.values.tolist()
    return [list(row) for row in table]

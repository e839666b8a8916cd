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
from lmd.controller.methods import method_names
from lmd.layouts import LmdError
from lmd.web import views
from lmd.web.pool import RenderPool
from lmd.web.progress import PhaseProgress
from lmd.web.state import TurnSettings, WebSession

log = logging.getLogger("lmd.web")
SEED_LIMIT = 2**31

PlannerFactory = Callable[[str | None, str | None], Any]
"""`factory(llm, llm_base_url)` -> a `lmd.prompts.Planner` (None: the command's default)."""


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any failure of `fn` into one readable message in the page (no traceback there)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (LmdError, ValueError, OSError) as e:
            raise gr.Error(one_line(e), print_exception=False) from None
        except Exception as e:  # a bug: the details go to the server's log only
            log.exception("lmd web: %s failed", fn.__name__)
            raise gr.Error(
                f"something went wrong ({type(e).__name__}: {one_line(e)}); "
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
        """The accordion's values, checked; errors name the field as the page labels it."""
        if method not in method_names():
            raise ValueError(f"Method must be one of {', '.join(method_names())}, not {method!r}")
        steps = _whole(steps, "Steps", low=1)
        seed = _whole(seed, "Seed", low=0, high=SEED_LIMIT)
        render = self.render.replace(method=method, steps=steps, sam=bool(sam))
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
                f"Opened {Path(upload).name}: {turns} turn{'s' if turns != 1 else ''}. A session "
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


def _whole(value: Any, field: str, *, low: int, high: int | None = None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer() or number < low or (high is not None and number >= high):
        limit = f"from {low} to {high - 1}" if high is not None else f"of at least {low}"
        raise ValueError(f"{field} must be a whole number {limit}, not {value!r}")
    return int(number)


def _rows(table: Any) -> list[list[Any]]:
    """The table's rows, whichever form Gradio hands them in (list, DataFrame, dict)."""
    if table is None:
        return []
    if isinstance(table, dict):
        table = table.get("data", [])
    if hasattr(table, "values") and hasattr(table, "columns"):
        table = table.values.tolist()
    return [list(row) for row in table]

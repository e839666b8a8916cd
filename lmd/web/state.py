"""`WebSession`: one browser session's conversations, their folders and their object pictures.

Each browser session gets its own `WebSession` (Gradio keeps it per session), so nothing is
shared between people but the loaded models. The turn logic is `lmd.conversation.Conversation`'s;
this only chooses which planner and renderer settings the next turn uses. Each conversation
gets a folder named for when it began and what it first asked (`lmd.web.folders`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from lmd.api import RenderSettings
from lmd.conversation import (
    Conversation,
    RenderOutput,
    RenderRequest,
    Session,
    SessionError,
    Turn,
    is_manual,
)
from lmd.layouts import Layout
from lmd.web.folders import new_folder
from lmd.web.limits import WebLimits
from lmd.web.pool import RenderPool

SESSION_FILE = "session.json"
LOADING = "loading"
"""The progress phase reported while a renderer's models load."""


class BusyError(SessionError):
    """This page is still drawing its last picture."""


@dataclass(frozen=True)
class Failure:
    """An action of the page that failed: what was asked (None: a button) and why it failed."""

    request: str | None
    message: str


@dataclass(frozen=True)
class TurnSettings:
    """What the settings accordion chose for the next turn."""

    render: RenderSettings
    planner: Any
    seed: int | None = None


class PooledRender:
    """The conversation's `RenderFn`: borrows a renderer from the pool for each picture.

    Keeps the per-object pictures of every picture it drew, by the picture's file.
    """

    def __init__(self, pool: RenderPool, settings: RenderSettings) -> None:
        self.pool = pool
        self.settings = settings
        self.last: RenderOutput | None = None

    def __call__(self, request: RenderRequest) -> RenderOutput:
        progress = request.progress

        def loading() -> None:
            if progress is not None:
                progress(LOADING, 0, 1)

        # The page's `PhaseProgress` also hears where the picture stands in line, and stops it.
        on_wait = getattr(progress, "waiting", None)
        stopped = getattr(progress, "stopped", None)
        with self.pool.renderer(
            self.settings, on_load=loading, on_wait=on_wait, stopped=stopped
        ) as renderer:
            output = renderer(request)
        self.last = output
        return output


class WebSession:
    """A browser session: its conversations, each saved in a folder of its own under `root`.

    `failure` is the last action's failure, shown in the conversation until the next action.
    """

    def __init__(self, root: Path, pool: RenderPool, *, remove_on_close: bool = False) -> None:
        self.root = Path(root)
        self.pool = pool
        self.remove_on_close = remove_on_close
        self.conversation: Conversation | None = None
        self.folders: list[Path] = []
        self.objects: dict[str, list[tuple[Image.Image, str]]] = {}
        self.notes: list[str] = []
        self.failure: Failure | None = None
        self._render: PooledRender | None = None
        self.consistent = True  # the page's checkbox: recurring objects keep their look
        self._lock = threading.Lock()

    # --- state -----------------------------------------------------------------------------

    @property
    def current(self) -> Turn | None:
        return self.conversation.current if self.conversation is not None else None

    @property
    def folder(self) -> Path | None:
        """The current conversation's folder (its pictures and session.json)."""
        c = self.conversation
        return c.out_dir if c is not None else None

    @property
    def session_file(self) -> Path | None:
        """The saved session (what `lmd chat --session` resumes), once there is a turn."""
        c = self.conversation
        if c is None or c.session_path is None or not c.session_path.exists():
            return None
        return c.session_path

    def owns(self, path: str | Path | None) -> bool:
        """Whether `path` is a file this page wrote (in one of its conversations' folders)."""
        if path is None:
            return False
        resolved = Path(path).resolve()
        mine = any(resolved.is_relative_to(f.resolve()) for f in self.folders)
        return mine and resolved.is_file()

    def picture_file(self, turn: Turn | None) -> str | None:
        """The turn's picture file, to download, if this page has it."""
        if turn is None or not self.owns(turn.image_path):
            return None
        return turn.image_path

    def object_pictures(self, turn: Turn | None) -> list[tuple[Image.Image, str]]:
        """Each object of `turn` drawn on its own, as (picture, name); empty if not kept."""
        if turn is None or turn.image_path is None:
            return []
        return self.objects.get(turn.image_path, [])

    @contextmanager
    def busy(self, *, wait: bool) -> Iterator[None]:
        """Hold this page's conversation; without `wait`, refuse while a picture is drawn."""
        if not self._lock.acquire(blocking=wait):
            raise BusyError("still drawing the last picture: wait for it to finish")
        try:
            yield
        finally:
            self._lock.release()

    # --- turns -----------------------------------------------------------------------------

    def send(self, text: str, settings: TurnSettings, progress=None) -> Turn:
        conversation = self._ready(settings, text)
        return self._keep(conversation.send(text, progress=progress))

    def edit(self, layout, settings: TurnSettings, progress=None) -> Turn:
        conversation = self._ready(settings, layout_words(layout))
        return self._keep(conversation.edit(layout, progress=progress))

    def reroll(self, settings: TurnSettings, progress=None) -> Turn:
        conversation = self._ready(settings, "")
        return self._keep(conversation.reroll(progress=progress))

    def undo(self) -> Turn | None:
        return self.conversation.undo() if self.conversation is not None else None

    def redo(self) -> Turn | None:
        return self.conversation.redo() if self.conversation is not None else None

    def jump(self, index: int) -> Turn | None:
        """Undo or redo until turn `index` (0-based, of every saved turn) is the current one."""
        c = self.conversation
        if c is None or not 0 <= index < len(c.session.turns):
            return self.current
        while c.session.cursor > index and c.undo() is not None:
            pass
        while c.session.cursor < index and c.redo() is not None:
            pass
        return c.current

    def start_over(self) -> None:
        """Forget the conversation (its files stay); the next turn starts a new one."""
        self._drop()
        self.notes = []

    def open(
        self, path: str | Path, settings: TurnSettings, limits: WebLimits | None = None
    ) -> Conversation:
        """Continue the session saved at `path` (a copy is kept here); raises `SessionError`,
        or `LimitError` for a session past `limits`. A failure leaves the page as it was.

        Pictures are not part of a session file, and the paths it names are not followed
        (they could name anyone's files on this server): only this page's own pictures show.
        """
        session = Session.load(path)
        (limits or WebLimits()).check_session(session, Path(path).name)
        turns = [
            t if self.owns(t.image_path) else t.model_copy(update={"image_path": None})
            for t in session.turns
        ]
        session = session.model_copy(update={"turns": turns})
        conversation, render = self._new(settings, first_request(session), session=session)
        try:
            conversation.save()
        except BaseException:
            conversation.close()
            self._forget(conversation.out_dir)
            raise
        self._drop()
        self.conversation, self._render = conversation, render
        self.notes = []
        return conversation

    def close(self) -> None:
        """Called when the browser session ends: remove its files if they were temporary."""
        self._drop()
        if self.remove_on_close:
            for folder in self.folders:
                shutil.rmtree(folder, ignore_errors=True)

    # --- internals -------------------------------------------------------------------------

    def _drop(self) -> None:
        """Let go of the current conversation and its session lock."""
        if self.conversation is not None:
            self.conversation.close()
            self.conversation = None

    def _ready(self, settings: TurnSettings, request: str) -> Conversation:
        """The conversation the next turn goes to; a new one (named for `request`) if none
        has a turn yet (one whose first request failed gives way, with its empty folder)."""
        c = self.conversation
        if c is not None and not c.session.turns:
            self._drop()
            self._forget(c.out_dir)
        if self.conversation is None:
            self.conversation, self._render = self._new(settings, request)
        self.conversation.planner = settings.planner
        if self.conversation.consistent != self.consistent:
            self.conversation.set_consistent(self.consistent)
        assert self._render is not None
        self._render.settings = settings.render
        self._render.last = None
        return self.conversation

    def _new(
        self, settings: TurnSettings, request: str, session: Session | None = None
    ) -> tuple[Conversation, PooledRender]:
        """A new conversation in a folder of its own (named for `request`), and the render
        function it draws with."""
        folder = new_folder(self.root, request)
        self.folders.append(folder)
        pooled = PooledRender(self.pool, settings.render)
        render = settings.render
        meta = {"model": render.model, "method": render.method, "steps": render.steps}
        options: dict[str, Any] = {"session": session} if session is not None else {
            "seed": settings.seed, "meta": meta,
        }  # fmt: skip
        conversation = Conversation(
            settings.planner,
            pooled,
            session_path=folder / SESSION_FILE,
            out_dir=folder,
            **options,
        )
        return conversation, pooled

    def _forget(self, folder: Path | None) -> None:
        """Remove a folder of this page that holds no picture and no session (only a lock)."""
        if folder is None or folder not in self.folders:
            return
        if any(not p.name.startswith(".") for p in folder.iterdir()):
            return
        self.folders.remove(folder)
        shutil.rmtree(folder, ignore_errors=True)

    def _keep(self, turn: Turn) -> Turn:
        output = self._render.last if self._render is not None else None
        if output is not None and turn.image_path is not None:
            names = turn.layout.names
            self.objects[turn.image_path] = list(zip(output.box_images, names, strict=False))
        return turn


def layout_words(layout: Layout) -> str:
    """What a layout made by hand asks for, in words: its objects, else its background."""
    return ", ".join(layout.names) or layout.background


def first_request(session: Session) -> str:
    """What a saved conversation first asked (for a layout made by hand: `layout_words`)."""
    if not session.turns:
        return ""
    turn = session.turns[0]
    return layout_words(turn.layout) if is_manual(turn) else turn.request

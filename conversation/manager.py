"""`Conversation`: edit a layout over many turns, render each one, save the session every time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lmd.conversation.anchors import propose
from lmd.conversation.identity import MatchConfig, assign
from lmd.conversation.lock import SessionLock
from lmd.conversation.render import Progress, RenderFn, RenderRequest
from lmd.conversation.session import Session, SessionError, Turn
from lmd.conversation.summary import describe_change, describe_layout
from lmd.layouts.io import atomic_save_image
from lmd.layouts.model import Layout
from lmd.layouts.seeds import check_seed, derive_seed, new_seed

if TYPE_CHECKING:
    from lmd.prompts import PlanResult

REROLL_REQUEST = "/new"
"""The request recorded for a turn that only re-rolls the background seed."""

MANUAL_REQUEST = "/edit"
"""The request recorded for a turn whose layout was edited by hand (no LLM asked)."""

MANUAL_HISTORY_TEXT = "(the layout was edited by hand)"
"""What the LLM is told a hand-edited turn asked for, in the history of later edits."""


class PlannerLike(Protocol):
    """What a conversation needs from stage 1's `lmd.prompts.Planner`."""

    def plan_messages(self, caption: str) -> list[dict[str, str]]: ...

    def edit_messages(
        self, history: Sequence[tuple[str, Layout]], request: str
    ) -> list[dict[str, str]]: ...

    def complete(self, messages: list[dict[str, str]]) -> PlanResult: ...


class Conversation:
    """A multi-turn layout conversation: plan, edit with history, render, undo and redo.

    `planner` is a `lmd.prompts.Planner` (or anything with its `plan_messages`, `edit_messages` and
    `complete`); `render` is a `RenderFn`. With `session_path` the session is saved there
    atomically after every change; with `out_dir` each picture is written there as
    `turn-NNN.png`, numbered in the order they were rendered. A planner or render failure
    raises its `LmdError` and leaves the session, in memory and on disk, as it was.

    While a conversation has a session file it holds that file's lock (`SessionLock`): a
    second conversation on the same file, in this process or another, gets a `SessionError`.
    `close()` (or leaving a `with` block, or the process ending) lets it go.
    """

    def __init__(
        self,
        planner: PlannerLike,
        render: RenderFn,
        *,
        session_path: str | Path | None = None,
        out_dir: str | Path | None = None,
        seed: int | None = None,
        progress: Progress | None = None,
        match: MatchConfig | None = None,
        meta: dict[str, Any] | None = None,
        session: Session | None = None,
        lock: SessionLock | None = None,
    ) -> None:
        missing = [
            m for m in ("plan_messages", "edit_messages", "complete") if not hasattr(planner, m)
        ]
        if missing:
            raise TypeError(f"`planner` lacks {', '.join(missing)}: pass an lmd.prompts.Planner")
        if not callable(render):
            raise TypeError(f"`render` must be callable, got {type(render).__name__}")
        if seed is not None and session is not None:
            raise ValueError("pass `seed` or `session`, not both: a session keeps its seed")
        if seed is not None:
            check_seed(seed)
        self._lock = lock
        if session_path is not None and lock is None:
            self._lock = SessionLock(session_path).acquire()
        if session is None:
            if session_path is not None and Path(session_path).exists():
                self.close()
                raise SessionError(
                    f"session file {session_path} already exists; resume it with "
                    "Conversation.load (or lmd chat --session) instead of starting over"
                )
            if seed is None:
                seed = new_seed()
            session = Session(seed=seed, meta=meta or {})
        self.planner = planner
        self.render = render
        self.session_path = Path(session_path) if session_path is not None else None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.match = match or MatchConfig()
        self._session = session

    # --- resuming ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        planner: PlannerLike,
        render: RenderFn,
        *,
        out_dir: str | Path | None = None,
        **options: Any,
    ) -> Conversation:
        """Resume the session saved at `path`; later turns keep saving there.

        Without `out_dir`, new pictures go into the session file's own folder.
        Raises `SessionError` if the file is missing, not a session, or in use by another
        conversation; the file is untouched.
        """
        lock = SessionLock(path).acquire()  # before reading: no one may write it under us
        try:
            session = Session.load(path)
            if out_dir is None:
                out_dir = Path(path).parent
            return cls(
                planner, render, session_path=path, out_dir=out_dir, session=session,
                lock=lock, **options,
            )  # fmt: skip
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(
        cls, path: str | Path, planner: PlannerLike, render: RenderFn, **options: Any
    ) -> Conversation:
        """Resume the session at `path` if the file exists, else start a new one saved there.

        A resumed session keeps its own seed and meta; `seed` and `meta` apply to a new one.
        """
        if Path(path).exists():
            options.pop("seed", None)
            options.pop("meta", None)
            return cls.load(path, planner, render, **options)
        return cls(planner, render, session_path=path, **options)

    # --- state ---------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        return self._session

    @property
    def seed(self) -> int:
        return self._session.seed

    @property
    def turns(self) -> list[Turn]:
        """The turns up to the current one (undone turns are not included)."""
        return self._session.history

    @property
    def current(self) -> Turn | None:
        return self._session.current

    @property
    def consistent(self) -> bool:
        """Whether objects that recur across turns keep their look (shared attention with the
        turn that anchors them); on unless turned off (`set_consistent`)."""
        return self._session.consistent

    def set_consistent(self, on: bool) -> None:
        """Turn keeping recurring objects' look on or off for this session (saved with it,
        once it has a turn)."""
        meta = {**self._session.meta, "consistent": bool(on)}
        session = self._session.model_copy(update={"meta": meta})
        if session.turns:
            self._store(session)
        else:
            self._session = session

    @property
    def can_undo(self) -> bool:
        return self._session.cursor > 0

    @property
    def can_redo(self) -> bool:
        return self._session.cursor < len(self._session.turns) - 1

    # --- turns ---------------------------------------------------------------------------

    def send(self, text: str, *, new_seed: bool = False, progress: Progress | None = None) -> Turn:
        """Plan (first turn) or edit the layout with `text`, render it and save the session.

        The edit sees the (request, layout) history up to the current turn. `new_seed`
        draws the picture with a new background seed. Turns that were undone are dropped.
        """
        text = text.strip()
        if not text:
            raise ValueError("`text` is empty: say what to draw or change")
        self._ensure_lock()  # a closed conversation is refused before it asks the LLM
        # 1. Ask the planner, with the history when there is one (hand edits included).
        history = [
            (MANUAL_HISTORY_TEXT if is_manual(t) else t.request, t.layout)
            for t in self.turns
            if t.reply is not None or is_manual(t)
        ]
        if history:
            messages = self.planner.edit_messages(history, text)
        else:
            messages = self.planner.plan_messages(text)
        result = self.planner.complete(messages)
        reply = result.reply if result.reply is not None else ""
        # 2. Match identities, render, save.
        return self._commit(text, reply, result.layout, new_seed=new_seed, progress=progress)

    def reroll(self, *, progress: Progress | None = None) -> Turn:
        """Draw the current layout again with a new background seed, as a new (undoable) turn."""
        current = self.current
        if current is None:
            raise SessionError("nothing to draw again yet: send a request first")
        return self._commit(REROLL_REQUEST, None, current.layout, new_seed=True, progress=progress)

    def edit(self, layout: Layout, *, progress: Progress | None = None) -> Turn:
        """Render `layout` (edited by hand) as a new turn without asking the planner.

        Like any turn: objects keep their identity and seed by the usual matching, so
        unchanged ones are reused by the renderer; undo and redo work. The session records it
        with the request `MANUAL_REQUEST` and no reply, and later edits show it to the LLM.
        """
        if not isinstance(layout, Layout):
            raise TypeError(f"`layout` must be an lmd.layouts.Layout, got {type(layout).__name__}")
        return self._commit(MANUAL_REQUEST, None, layout, new_seed=False, progress=progress)

    def undo(self) -> Turn | None:
        """Step back one turn; returns the turn now current, or None if there is nothing to undo."""
        if not self.can_undo:
            return None
        self._store(self._session.model_copy(update={"cursor": self._session.cursor - 1}))
        return self.current

    def redo(self) -> Turn | None:
        """Step forward again after `undo`; returns the turn now current, or None if none."""
        if not self.can_redo:
            return None
        self._store(self._session.model_copy(update={"cursor": self._session.cursor + 1}))
        return self.current

    def save(self, path: str | Path | None = None) -> Path:
        """Write the session to `path` (or the session file); an unsaved session adopts `path`."""
        target = Path(path) if path is not None else self.session_path
        if target is None:
            raise SessionError("this session has no file yet: give a path to save it to")
        adopt = self.session_path is None
        if target == self.session_path:
            self._ensure_lock()
        lock = SessionLock(target).acquire() if adopt else None
        try:
            self._write(self._session, target)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if adopt:
            self.session_path, self._lock = target, lock
        return target

    def close(self) -> None:
        """Let go of the session file's lock; the session is already saved (a later change
        takes the lock again)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------

    def _commit(
        self,
        request: str,
        reply: str | None,
        layout: Layout,
        *,
        new_seed: bool,
        progress: Progress | None,
    ) -> Turn:
        self._ensure_lock()  # before the picture is written into the session's folder
        session = self._session
        previous = session.current
        renders = session.renders + 1
        # 1. Identities and seeds.
        found = assign(
            previous.objects() if previous is not None else [],
            layout.boxes,
            session_seed=session.seed,
            issued=session.issued,
            config=self.match,
        )
        if previous is None:
            background_seed = derive_seed(session.seed, "background")
        elif new_seed:
            background_seed = derive_seed(session.seed, f"background/{renders}")
        else:
            background_seed = previous.background_seed
        # 2. Summary.
        if previous is None:
            summary = describe_layout(layout)
        else:
            summary = describe_change(previous.layout, layout, found.matched, found.removed)
            if new_seed:
                reroll = f"new background seed {background_seed}"
                summary = reroll if summary == "no change" else f"{summary}; {reroll}"
        # 3. Render (recurring objects anchored to the turns that keep their look), write it.
        anchors = propose(session, found) if session.consistent else ()
        output = self.render(
            RenderRequest(
                layout=layout,
                background_seed=background_seed,
                object_seeds=found.seeds,
                progress=progress or self.progress,
                anchors=anchors,
            )
        )
        offered = {(j, a.turn) for a in anchors for j in a.boxes}
        anchored = {
            found.ids[j]: turn for j, turn in output.anchored.items() if (j, turn) in offered
        }
        image_path = None
        if self.out_dir is not None:
            image_path = str(self.out_dir / f"turn-{renders:03d}.png")
            atomic_save_image(output.image, image_path)
        # 4. Save the session with the new turn, then make it current.
        turn = Turn(
            request=request,
            reply=reply,
            layout=layout,
            background_seed=background_seed,
            object_ids=found.ids,
            object_seeds=found.seeds,
            image_path=image_path,
            generated=output.generated,
            reused=output.reused,
            summary=summary,
            anchors=anchored,
        )
        if image_path is None:  # on disk it is read when asked: a long chat holds no pictures
            turn.with_image(output.image)
        history = session.history
        self._store(
            session.model_copy(
                update={
                    "turns": [*history, turn],
                    "cursor": len(history),
                    "issued": found.issued,
                    "renders": renders,
                }
            )
        )
        return turn

    def _store(self, session: Session) -> None:
        """Save `session` (when there is a session file) and only then make it the state."""
        if self.session_path is not None:
            self._ensure_lock()
            self._write(session, self.session_path)
        self._session = session

    def _ensure_lock(self) -> None:
        """Closed and used again: take the session file's lock again (or be refused)."""
        if self.session_path is not None and self._lock is None:
            self._lock = SessionLock(self.session_path).acquire()

    @staticmethod
    def _write(session: Session, path: Path) -> None:
        try:
            session.save(path)
        except OSError as e:
            raise SessionError(f"cannot save the session to {path}: {e}") from None


def is_manual(turn: Turn) -> bool:
    """Whether `turn` is a hand edit (`Conversation.edit`), not an LLM answer or a re-roll."""
    return turn.reply is None and turn.request == MANUAL_REQUEST

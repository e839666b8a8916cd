"""The chat REPL: one request per line, slash commands, one line per failure."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from lmd.conversation.lines import LineReader
from lmd.conversation.manager import Conversation
from lmd.conversation.render import Progress
from lmd.conversation.session import Turn
from lmd.conversation.summary import anchor_note
from lmd.layouts.draw import draw
from lmd.layouts.errors import LayoutWarning, LmdError, one_line
from lmd.layouts.io import atomic_save_image

PROMPT = "lmd> "
HELP = """\
Type what to draw, then what to change ("move the dog left", "make the cat black").
  /undo         go back one turn
  /redo         go forward again
  /layout       print the current layout
  /save [FILE]  save the session (to FILE)
  /new          draw the same layout again with a new background seed
  /consistent [on|off]  keep the look of objects that recur across turns (on by default)
  /help         this help
  /quit         leave (the session is already saved after every turn)
Each picture turn-NNN.png has its boxes drawn over it in turn-NNN.layout.png."""
FAILED = 1
INTERRUPTED = 130


def _describe(turn: Turn, number: int) -> str:
    where = turn.image_path or "(image not saved: no output folder)"
    counts = f"{turn.generated} drawn, {turn.reused} reused{anchor_note(turn)}"
    return f"turn {number}: {where}\n{turn.summary} ({counts})"


def _consistent_text(on: bool) -> str:
    if on:
        return "consistent: on (objects that recur keep their look from the turn they were drawn)"
    return "consistent: off (every turn draws its objects afresh)"


def overlay_path(image_path: str | Path) -> Path:
    """Where a turn's layout overlay goes: `turn-001.png` -> `turn-001.layout.png`."""
    path = Path(image_path)
    return path.with_name(f"{path.stem}.layout.png")


def restore_overlays(conversation: Conversation) -> list[Path]:
    """Draw again the layout overlay of every saved turn whose picture has none (a chat killed
    between saving a turn and drawing its overlay); returns the overlays written."""
    written = []
    for turn in conversation.session.turns:
        if not turn.image_path or overlay_path(turn.image_path).exists():
            continue
        image = turn.image
        if image is not None:
            path = overlay_path(turn.image_path)
            written.append(atomic_save_image(draw(turn.layout, image), path))
    return written


def run_repl(
    conversation: Conversation,
    input_stream: TextIO = sys.stdin,
    output: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    *,
    progress: Progress | None = None,
    prepare: Callable[[], None] | None = None,
    history_file: str | Path | None = None,
) -> int:
    """Read requests and commands from `input_stream` until EOF or `/quit`; return an exit code.

    Each picture's path and a one-line summary of the change go to `output` (and the layout
    is drawn over the picture beside it); failures go to `err` as one `error: ...` line and
    leave the session as it was, layout warnings as `warning: ...` lines. Returns 0, 1 when
    the last request failed, or 130 on Ctrl-C at the prompt (or during a request, when the
    input is not a terminal). `prepare()` runs before each request that draws (to load
    models before the LLM is asked). On a terminal, lines are read with readline editing and
    the history is kept in `history_file`. `progress` is handed to the renderer. A planner
    that announces retries to no one (`on_retry` None) announces them on `err` as `note:`.
    """
    repl = _Repl(conversation, output, err, progress, prepare)
    failed = False
    restore_overlays(conversation)  # they are derived: a resumed chat has them all
    with LineReader(input_stream, output, PROMPT, history_file) as reader:
        while True:
            try:
                line = reader.read()
            except KeyboardInterrupt:
                repl.say("")
                return INTERRUPTED
            if line is None or _command(line) in QUIT:
                return FAILED if failed else 0
            if not line.strip():
                continue
            try:
                done = repl.handle(line.strip())
                failed = failed if done is None else not done
            except KeyboardInterrupt:
                repl.complain("interrupted; the session is as it was")
                if not reader.interactive:
                    return INTERRUPTED
                failed = True


QUIT = ("quit", "exit", "q")
COMMANDS = {name: name for name in ("undo", "redo", "layout", "save", "consistent", "help")} | {
    "new": "reroll"
}
"""Each slash command and the `_Repl` method that runs it."""


def _command(line: str) -> str | None:
    """The slash command a line gives (`/Undo now` -> `undo`), or None for a request."""
    text = line.strip()
    return text[1:].partition(" ")[0].lower() if text.startswith("/") else None


class _Repl:
    """What each line does: a slash command, or a request that draws a new turn."""

    def __init__(self, conversation: Conversation, output: TextIO, err: TextIO, progress, prepare):
        self.conversation = conversation
        self.output, self.err = output, err
        self.progress, self.prepare = progress, prepare
        if getattr(conversation.planner, "on_retry", False) is None:
            conversation.planner.on_retry = lambda notice: print(
                f"note: {notice}", file=err, flush=True
            )  # (not through self: the planner outlives this loop)

    def undo(self, _: str) -> None:
        self.show(self.conversation.undo(), "nothing to undo")

    def redo(self, _: str) -> None:
        self.show(self.conversation.redo(), "nothing to redo")

    def help(self, _: str) -> None:
        self.say(HELP)

    def consistent(self, arg: str) -> None:
        word = arg.lower()
        if word not in ("", "on", "off"):
            self.complain("usage: /consistent on|off")
            return
        if word:
            self.conversation.set_consistent(word == "on")
        self.say(_consistent_text(self.conversation.consistent))

    def say(self, text: str) -> None:
        print(text, file=self.output, flush=True)

    def complain(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def handle(self, line: str) -> bool | None:
        """Run one line; False when it failed (said on `err`, the session left as it was),
        None for an unknown command (nothing was tried)."""
        name = _command(line)
        try:
            if name is None:
                self.drawn(lambda: self.conversation.send(line, progress=self.progress))
            elif name in COMMANDS:
                getattr(self, COMMANDS[name])(line.partition(" ")[2].strip())
            else:
                self.complain(f"unknown command /{name}; /help lists the commands")
                return None
            return True
        except (LmdError, ValueError, OSError) as e:  # whatever a reply or the disk does
            self.complain(f"error: {one_line(e, limit=None)}")
            return False

    def show(self, turn: Turn | None, nothing: str) -> None:
        self.say(nothing if turn is None else _describe(turn, len(self.conversation.turns)))

    def drawn(self, make: Callable[[], Turn]) -> None:
        """Make a turn that draws, then show it: warnings first, the overlay beside it."""
        if self.prepare is not None:
            self.prepare()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LayoutWarning)
            turn = make()
        for w in caught:  # boxes clipped, a layout not in English: one line each
            if issubclass(w.category, LayoutWarning):
                self.complain(f"warning: {one_line(w.message, limit=None)}")
        if turn.image_path and (image := turn.image) is not None:  # read from disk once
            atomic_save_image(draw(turn.layout, image), overlay_path(turn.image_path))
        self.show(turn, "")

    def save(self, arg: str) -> None:
        path = Path(arg).expanduser() if arg else None
        self.say(f"saved: {self.conversation.save(path)}")

    def layout(self, _: str) -> None:
        current = self.conversation.current
        self.say(current.layout.to_llm_text() if current is not None else "no layout yet")

    def reroll(self, _: str) -> None:
        if self.conversation.current is None:
            self.say("nothing drawn")
        else:
            self.drawn(lambda: self.conversation.reroll(progress=self.progress))

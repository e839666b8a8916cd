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
from lmd.layouts.errors import LayoutWarning, LmdError
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
    reader = LineReader(input_stream, output, PROMPT, history_file)
    failed = False

    def say(text: str) -> None:
        print(text, file=output, flush=True)

    def complain(text: str) -> None:
        print(text, file=err, flush=True)

    if getattr(conversation.planner, "on_retry", False) is None:
        conversation.planner.on_retry = lambda notice: complain(f"note: {notice}")

    def show(turn: Turn | None, nothing: str) -> None:
        if turn is None:
            say(nothing)
        else:
            say(_describe(turn, len(conversation.turns)))

    def drawn(make: Callable[[], Turn]) -> None:
        if prepare is not None:
            prepare()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LayoutWarning)
            turn = make()
        for w in caught:  # boxes clipped, a layout not in English: one line each
            if issubclass(w.category, LayoutWarning):
                complain(f"warning: {_one_line(w.message)}")
        if turn.image_path and (image := turn.image) is not None:  # read from disk once
            atomic_save_image(draw(turn.layout, image), overlay_path(turn.image_path))
        show(turn, "")

    def save(arg: str) -> None:
        say(f"saved: {conversation.save(Path(arg).expanduser() if arg else None)}")

    def layout(_: str) -> None:
        current = conversation.current
        say(current.layout.to_llm_text() if current is not None else "no layout yet")

    def reroll(_: str) -> None:
        if conversation.current is None:
            say("nothing drawn")
        else:
            drawn(lambda: conversation.reroll(progress=progress))

    def consistent(arg: str) -> None:
        word = arg.lower()
        if word not in ("", "on", "off"):
            complain("usage: /consistent on|off")
            return
        if word:
            conversation.set_consistent(word == "on")
        say(_consistent_text(conversation.consistent))

    commands: dict[str, Callable[[str], None]] = {
        "undo": lambda _: show(conversation.undo(), "nothing to undo"),
        "redo": lambda _: show(conversation.redo(), "nothing to redo"),
        "layout": layout,
        "save": save,
        "new": reroll,
        "consistent": consistent,
        "help": lambda _: say(HELP),
    }

    with reader:
        while True:
            try:
                line = reader.read()
            except KeyboardInterrupt:
                say("")
                return INTERRUPTED
            if line is None:
                return FAILED if failed else 0
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    name, _, arg = line[1:].partition(" ")
                    name = name.lower()
                    if name in ("quit", "exit", "q"):
                        return FAILED if failed else 0
                    if name not in commands:
                        complain(f"unknown command /{name}; /help lists the commands")
                        continue
                    commands[name](arg.strip())
                else:
                    drawn(lambda line=line: conversation.send(line, progress=progress))
                failed = False
            except (LmdError, ValueError, OSError) as e:  # whatever a reply or the disk does
                complain(f"error: {_one_line(e)}")
                failed = True
            except KeyboardInterrupt:
                complain("interrupted; the session is as it was")
                if not reader.interactive:
                    return INTERRUPTED
                failed = True


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

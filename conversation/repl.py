"""The chat REPL: one request per line, slash commands, one line per failure."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import TextIO

from conversation.manager import Conversation
from conversation.render import Progress
from conversation.session import Turn
from layouts.errors import LayoutWarning, LmdError

PROMPT = "lmd> "
HELP = """\
Type what to draw, then what to change ("move the dog left", "make the cat black").
  /undo         go back one turn
  /redo         go forward again
  /layout       print the current layout
  /save [FILE]  save the session (to FILE)
  /new          draw the same layout again with a new background seed
  /help         this help
  /quit         leave (the session is already saved after every turn)"""


def _describe(turn: Turn, number: int) -> str:
    where = turn.image_path or "(image not saved: no output folder)"
    counts = f"{turn.generated} drawn, {turn.reused} reused"
    return f"turn {number}: {where}\n{turn.summary} ({counts})"


def run_repl(
    conversation: Conversation,
    input_stream: TextIO = sys.stdin,
    output: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    *,
    progress: Progress | None = None,
) -> int:
    """Read requests and commands from `input_stream` until EOF or `/quit`; returns 0.

    Each picture's path and a one-line summary of the change go to `output`; failures go to
    `err` as one `error: ...` line and leave the session as it was. The prompt is shown only
    when `input_stream` is a terminal. `progress` is handed to the renderer. A planner that
    announces retries to no one (`on_retry` None) announces them on `err` as `note:` lines.
    """
    interactive = _isatty(input_stream)

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

    def save(arg: str) -> None:
        say(f"saved: {conversation.save(arg or None)}")

    def layout(_: str) -> None:
        current = conversation.current
        say(current.layout.to_llm_text() if current is not None else "no layout yet")

    commands: dict[str, Callable[[str], None]] = {
        "undo": lambda _: show(conversation.undo(), "nothing to undo"),
        "redo": lambda _: show(conversation.redo(), "nothing to redo"),
        "layout": layout,
        "save": save,
        "new": lambda _: show(conversation.reroll(progress=progress), "nothing drawn"),
        "help": lambda _: say(HELP),
    }

    while True:
        if interactive:
            print(PROMPT, end="", file=output, flush=True)
        try:
            line = input_stream.readline()
        except KeyboardInterrupt:
            say("")
            return 130
        if not line:
            if interactive:
                say("")
            return 0
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                name, _, arg = line[1:].partition(" ")
                name = name.lower()
                if name in ("quit", "exit", "q"):
                    return 0
                if name not in commands:
                    complain(f"unknown command /{name}; /help lists the commands")
                    continue
                commands[name](arg.strip())
            else:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", LayoutWarning)
                    turn = conversation.send(line, progress=progress)
                for w in caught:  # boxes clipped, a layout not in English: one line each
                    if issubclass(w.category, LayoutWarning):
                        complain(f"warning: {_one_line(w.message)}")
                show(turn, "")
        except (LmdError, ValueError, OSError) as e:  # whatever a reply or the disk does
            complain(f"error: {_one_line(e)}")
        except KeyboardInterrupt:
            complain("interrupted; the session is as it was")
            if not interactive:
                return 130


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

"""Reading the chat's lines: readline editing and history on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TextIO

HISTORY_LENGTH = 1000


def _readline():
    """The `readline` module where Python has one (not on Windows without pyreadline)."""
    try:
        import readline
    except ImportError:
        return None
    return readline


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class LineReader:
    """`read()` -> the next line without its newline, or None at end of input.

    On the process's own terminal (`input_stream` is `sys.stdin`, `output` is `sys.stdout`,
    both terminals) lines come from `input()` with readline's editing, and the history is
    read from and written back to `history_file`. Otherwise lines are read from the stream,
    with the prompt written to `output` only when the input is a terminal.
    """

    def __init__(
        self,
        input_stream: TextIO,
        output: TextIO,
        prompt: str,
        history_file: str | Path | None = None,
    ):
        self.input = input_stream
        self.output = output
        self.prompt = prompt
        self.interactive = _isatty(input_stream)
        own_terminal = input_stream is sys.stdin and output is sys.stdout and _isatty(output)
        self.readline = _readline() if self.interactive and own_terminal else None
        self.history_file = Path(history_file).expanduser() if history_file else None

    def __enter__(self) -> LineReader:
        if self.readline is not None and self.history_file is not None:
            self.readline.set_history_length(HISTORY_LENGTH)
            with contextlib.suppress(OSError):
                self.readline.read_history_file(self.history_file)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.readline is not None and self.history_file is not None:
            with contextlib.suppress(OSError):  # history is a convenience, never an error
                self.history_file.parent.mkdir(parents=True, exist_ok=True)
                self.readline.write_history_file(self.history_file)

    def read(self) -> str | None:
        if self.readline is not None:
            try:
                return input(self.prompt)
            except EOFError:
                print(file=self.output, flush=True)
                return None
        if self.interactive:
            print(self.prompt, end="", file=self.output, flush=True)
        line = self.input.readline()
        if not line:
            if self.interactive:
                print(file=self.output, flush=True)
            return None
        return line.rstrip("\n")

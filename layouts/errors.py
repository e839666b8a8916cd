"""The project's exception family (lowest room, so every room can share it)."""

from __future__ import annotations


class LmdError(Exception):
    """Base class of every error lmd raises on purpose; the CLI prints these as one line.

    `details` are lines shown under that line (the line of a file that is wrong, a caret).
    """

    details: tuple[str, ...] = ()


class LayoutParseError(LmdError, ValueError):
    """A text (an LLM reply, a file) could not be read as a layout.

    `str(e)` says what was wrong, in words for anyone; `fix` tells an LLM how to answer
    instead (sent with the correction request, never shown to people); `position` is the
    character of the text where reading stopped (None when not known), and `reason` the
    message without it.
    """

    def __init__(
        self, message: str = "", *, fix: str = "", position: int | None = None, reason: str = ""
    ):
        super().__init__(message)
        self.fix = fix
        self.position = position
        self.reason = reason or message

    @property
    def for_llm(self) -> str:
        """The message with what to do about it, for a correction request."""
        return f"{self}; {self.fix}" if self.fix else str(self)


class LayoutWarning(UserWarning):
    """A layout was readable but had to be changed (a box clipped or dropped)."""


def one_line(error: BaseException | str, limit: int | None = 500) -> str:
    """`error`'s message on one line (its type's name when it has none), cut to `limit`
    characters (`None`: whole)."""
    text = " ".join(str(error).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


class FontWarning(UserWarning):
    """A label of a drawn layout has characters no font here can draw (they show as boxes)."""

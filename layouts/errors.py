"""The project's exception family (lowest room, so every room can share it)."""


class LmdError(Exception):
    """Base class of every error lmd raises on purpose; the CLI prints these as one line."""


class LayoutParseError(LmdError, ValueError):
    """An LLM reply (or a file) could not be read as a layout; the message says why."""


class LayoutWarning(UserWarning):
    """A layout was readable but had to be changed (a box clipped or dropped)."""


def one_line(error: BaseException | str, limit: int | None = 500) -> str:
    """`error`'s message on one line (its type's name when it has none), cut to `limit`
    characters (`None`: whole)."""
    text = " ".join(str(error).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."

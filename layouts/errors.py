"""The project's exception family (lowest room, so every room can share it)."""


class LmdError(Exception):
    """Base class of every error lmd raises on purpose; the CLI prints these as one line."""


class LayoutParseError(LmdError, ValueError):
    """An LLM reply (or a file) could not be read as a layout; the message says why."""


class LayoutWarning(UserWarning):
    """A layout was readable but had to be changed (a box clipped or dropped)."""

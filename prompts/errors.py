"""Errors of the planning stage."""

from lmd.layouts.errors import LmdError


class PlannerError(LmdError):
    """The LLM gave no usable layout; the message says how many attempts and the last problem."""

    def __init__(self, message: str, attempts: int = 0):
        super().__init__(message)
        self.attempts = attempts


class LLMUnavailableError(PlannerError):
    """The LLM could not be asked at all: no API key, key rejected, server unreachable, ..."""


class TemplateError(LmdError):
    """A template file is missing or malformed; the message names the file."""

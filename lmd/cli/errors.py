"""Library messages name Python arguments in backticks; the CLI shows the flags instead.

`for_the_cli("`steps` must be >= 1 but is 0")` -> `"--steps must be >= 1 but is 0"`, and
`` `device='cpu'` `` -> `--device cpu`. Names that are not options stay as they are.
"""

from __future__ import annotations

import dataclasses
import re
import sys

from lmd.cli.options import LlmOptions
from lmd.settings import SETTINGS

FLAGS = {
    **{name: declared.flag for name, declared in SETTINGS.items() if not declared.negated},
    **{
        f.name: f.metadata["setting"].flag
        for f in dataclasses.fields(LlmOptions)
        if not f.metadata["setting"].negated
    },
    "seed": "--seed",
    "sam": "--sam",  # `sam=...` names the SAM model in the loaders' messages
    "api_base": "--llm-base-url",
    "max_retries": "--llm-retries",
    "out_dir": "-o",
    "detector": "--detector",
}
"""The flag of each Python argument a library message may name."""
_NAMED = re.compile(r"`([a-z_]+)(?:=([^`]*))?`")


def for_the_cli(message: str) -> str:
    """`message` with each backticked Python argument (optionally `name=value`) as its flag."""

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name not in FLAGS:
            return match.group(0)
        if value is None:
            return FLAGS[name]
        value = value.strip().strip("'\"")
        return FLAGS[name] if value in ("True", "") else f"{FLAGS[name]} {value}"

    return _NAMED.sub(flag, message)


WARNING_CHARS = 300
"""A warning longer than this (a list of fifty object names) is cut, on its one line."""


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` for the CLI: one `warning: ...` line on stderr, no source line."""
    text = " ".join(str(message).split()) or category.__name__
    if len(text) > WARNING_CHARS:
        text = text[: WARNING_CHARS - 3] + "..."
    print(f"warning: {for_the_cli(text)}", file=file or sys.stderr, flush=True)

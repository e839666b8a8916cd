"""Library messages name Python arguments in backticks; the CLI shows the flags instead.

`for_the_cli("`steps` must be >= 1 but is 0")` -> `"--steps must be >= 1 but is 0"`, and
`` `device='cpu'` `` -> `--device cpu`. Names that are not options stay as they are.
"""

from __future__ import annotations

import re
import sys

FLAGS = {
    "model": "--model",
    "method": "--method",
    "steps": "--steps",
    "seed": "--seed",
    "device": "--device",
    "dtype": "--dtype",
    "height": "--height",
    "width": "--width",
    "sam": "--sam",
    "sam_model": "--sam",
    "sam_backend": "--sam-backend",
    "refine": "--refine",
    "refiner_model": "--refiner",
    "llm": "--llm",
    "api_base": "--llm-base-url",
    "llm_base_url": "--llm-base-url",
    "max_retries": "--llm-retries",
    "out_dir": "-o",
    "detector": "--detector",
}
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

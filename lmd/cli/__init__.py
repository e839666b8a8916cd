"""`lmd` command line: a thin layer over the Python API.

Each command lives in its own module and registers itself on `app` (or `bench_app`).
`run(argv)` returns the exit code and turns lmd's own errors into one readable line.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

# Importing these modules registers their commands (one line per command module).
import lmd.cli.batch  # noqa: F401
import lmd.cli.bench_edit  # noqa: F401
import lmd.cli.bench_speed  # noqa: F401
import lmd.cli.bench_stage1  # noqa: F401
import lmd.cli.bench_stage2  # noqa: F401
import lmd.cli.chat  # noqa: F401
import lmd.cli.generate  # noqa: F401
import lmd.cli.plan  # noqa: F401
import lmd.cli.render  # noqa: F401
import lmd.cli.web  # noqa: F401
from lmd.cli.app import app, bench_app

__all__ = ["app", "bench_app", "main", "run"]


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` and return its exit code; errors become one line on stderr."""
    from layouts.errors import LmdError

    # The libraries' own notices (deprecations, torchvision fallbacks) are not for our users.
    for var in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
        os.environ.setdefault(var, "error")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # An LLM request cancelled at its deadline can leave one of litellm's coroutines unawaited.
    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    try:
        app(args=argv, prog_name="lmd", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except OSError as e:
        if os.environ.get("LMD_DEBUG"):
            raise
        where = f": {str(e.filename)!r}" if e.filename else ""
        print(f"error: {e.strerror or _one_line(e)}{where}", file=sys.stderr)
        return 1
    except (LmdError, ValueError) as e:
        if os.environ.get("LMD_DEBUG"):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def main() -> None:
    sys.exit(run())

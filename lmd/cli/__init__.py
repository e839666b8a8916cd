"""`lmd` command line: a thin layer over the Python API.

Each command lives in its own module and registers itself on `app` (or `bench_app`).
`run(argv)` returns the exit code: usage mistakes print the usage block and return 2, lmd's
own errors become one `error: ...` line and return 1, Ctrl-C returns 130.
"""

from __future__ import annotations

import os
import sys
import warnings

# Importing these modules registers their commands (one line per command module).
import lmd.cli.batch  # noqa: F401
import lmd.cli.bench_edit  # noqa: F401
import lmd.cli.bench_mig  # noqa: F401
import lmd.cli.bench_speed  # noqa: F401
import lmd.cli.bench_stage1  # noqa: F401
import lmd.cli.bench_stage2  # noqa: F401
import lmd.cli.bench_story  # noqa: F401
import lmd.cli.chat  # noqa: F401
import lmd.cli.generate  # noqa: F401
import lmd.cli.plan  # noqa: F401
import lmd.cli.render  # noqa: F401
import lmd.cli.story  # noqa: F401
import lmd.cli.web  # noqa: F401
from lmd.cli.app import app, bench_app, click_module
from lmd.cli.errors import for_the_cli, show_warning
from lmd.quiet import ignore_library_warnings

__all__ = ["INTERRUPTED", "USAGE", "app", "bench_app", "main", "run"]

USAGE = 2
INTERRUPTED = 130


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` and return its exit code; errors become one line on stderr, and
    warnings one `warning: ...` line each."""
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    from lmd.layouts.errors import LmdError, one_line

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # An LLM request cancelled at its deadline can leave one of litellm's coroutines unawaited.
    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    if not os.environ.get("LMD_DEBUG"):  # the libraries' notices are not for our users
        for var in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            os.environ.setdefault(var, "error")  # read when they are first imported
        ignore_library_warnings()
    exceptions = click_module().exceptions
    import typer

    # Newer typer raises its own Exit and Abort; older ones raise click's (the same classes).
    exits = (getattr(exceptions, "Exit", typer.Exit), typer.Exit)
    aborts = (getattr(exceptions, "Abort", typer.Abort), typer.Abort)
    try:
        code = app(args=argv, prog_name="lmd", standalone_mode=False)
    except exits as e:
        return e.exit_code
    except exceptions.ClickException as e:  # usage mistakes: the usage block, exit 2
        e.show()
        return e.exit_code
    except (KeyboardInterrupt, *aborts):  # older click turns Ctrl-C into Abort
        code = INTERRUPTED
    except OSError as e:
        if os.environ.get("LMD_DEBUG"):
            raise
        where = f": {str(e.filename)!r}" if e.filename else ""
        print(f"error: {for_the_cli(e.strerror or one_line(e))}{where}", file=sys.stderr)
        return 1
    except (LmdError, ValueError) as e:
        if os.environ.get("LMD_DEBUG"):
            raise
        print(f"error: {for_the_cli(one_line(e))}", file=sys.stderr)
        for line in getattr(e, "details", ()):  # the line of a file that is wrong, a caret
            print(line, file=sys.stderr)
        return 1
    # Non-standalone typer returns a command's `typer.Exit` code (newer ones: Ctrl-C's 130).
    code = code if isinstance(code, int) else 0
    if code == INTERRUPTED:
        print("interrupted", file=sys.stderr)
    return code


def main() -> None:
    sys.exit(run())

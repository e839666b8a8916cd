"""`lmd plan CAPTION`: ask the LLM for a layout and print it."""

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.options import LlmOptions, llm_options


@app.command("plan")
@llm_options
def plan(
    caption: str = typer.Argument(..., metavar="CAPTION", help="What to draw, in any language."),
    as_json: bool = typer.Option(False, "--json", help="Print only the layout as JSON."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Also save the JSON here."),
    *,
    llm_options: LlmOptions,
) -> None:
    """Plan a layout (captioned boxes, background, negative prompt) for CAPTION."""
    planner = llm_options.planner()
    with layout_warnings_to_stderr():
        result = planner.complete(planner.plan_messages(caption))
    if output is not None:
        saved = result.layout.save(output)
    print(result.layout.to_json() if as_json else result.layout.to_llm_text())
    if output is not None:
        print(f"saved {saved}", file=sys.stderr if as_json else sys.stdout)


@contextmanager
def layout_warnings_to_stderr() -> Iterator[None]:
    """Show each `LayoutWarning` (a box clipped or dropped) as one `warning:` line on stderr."""
    from lmd.layouts import LayoutWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayoutWarning)
        yield
    for w in caught:
        if issubclass(w.category, LayoutWarning):
            print(f"warning: {w.message}", file=sys.stderr)

"""`lmd plan CAPTION`: ask the LLM for a layout and print it."""

import sys
import warnings
from pathlib import Path

import typer

from lmd.cli.app import app

LLM_HELP = "litellm model string, e.g. gpt-4.1-mini, anthropic/..., ollama/llama3 (env LMD_LLM)"
RETRIES_HELP = "Retries of a failed request (timeouts, 429, 5xx, connection errors)."
BASE_URL_HELP = "OpenAI-compatible server, e.g. http://localhost:8000/v1 (env LMD_LLM_BASE_URL)"


@app.command("plan")
def plan(
    caption: str = typer.Argument(..., help="What to draw, in any language."),
    llm: str | None = typer.Option(None, "--llm", help=LLM_HELP),
    llm_base_url: str | None = typer.Option(None, "--llm-base-url", help=BASE_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print only the layout as JSON."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ask the LLM even if cached."),
    llm_retries: int = typer.Option(4, "--llm-retries", min=0, help=RETRIES_HELP),
    output: Path | None = typer.Option(None, "-o", "--output", help="Also save the JSON here."),
) -> None:
    """Plan a layout (captioned boxes, background, negative prompt) for CAPTION."""
    from layouts import LayoutWarning
    from prompts import Planner

    planner = Planner(model=llm, api_base=llm_base_url, cache=not no_cache, max_retries=llm_retries)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayoutWarning)
        result = planner.complete(planner.plan_messages(caption))
    for w in caught:
        if issubclass(w.category, LayoutWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    if output is not None:
        saved = result.layout.save(output)
    print(result.layout.to_json() if as_json else result.layout.to_llm_text())
    if output is not None:
        print(f"saved {saved}", file=sys.stderr if as_json else sys.stdout)

"""`lmd generate CAPTION -o DIR`: plan a layout with the LLM, then draw it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.options import LlmOptions, Overwrite, llm_options, render_options, seed_option
from lmd.cli.progress import Bars, LazyRenderer, render_summary
from lmd.layouts import LayoutWarning
from lmd.settings import RenderSettings


@app.command("generate")
@llm_options
@render_options()
def generate_command(
    caption: str = typer.Argument(..., metavar="CAPTION", help="What to draw, in any language."),
    output: Path = typer.Option(..., "-o", "--output-dir", help="Folder for the files."),
    seed: int = seed_option(0),
    overwrite: Overwrite = False,
    *,
    llm_options: LlmOptions,
    settings: RenderSettings,
) -> None:
    """Plan a layout for CAPTION and draw it: writes image.png, layout.json and layout.png.

    The layout is printed as soon as the LLM has planned it, before the models load. A
    folder that holds those files already keeps them: the new ones are numbered
    (image-001.png, ...) unless --overwrite.
    """
    from lmd.api import generate

    settings.check()
    planner = llm_options.planner()

    def planned(plan) -> None:
        for note in plan.warnings:
            print(f"warning: {note}", file=sys.stderr)
        print(plan.layout.to_llm_text(), flush=True)

    bars = Bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LayoutWarning)  # `planned` prints them, in time
            result = generate(
                caption, seed=seed, out_dir=output, progress=bars, planner=planner,
                on_plan=planned, renderer=LazyRenderer(settings), overwrite=overwrite,
            )  # fmt: skip
    finally:
        bars.close()
    print(render_summary(settings.method, result.render))
    for path in result.files.values():
        print(f"wrote {path}")
    sys.stdout.flush()

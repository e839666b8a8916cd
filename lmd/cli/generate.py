"""`lmd generate CAPTION -o DIR`: plan a layout with the LLM, then draw it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.options import (
    LLM_TIMEOUT,
    Device,
    Dtype,
    Height,
    Llm,
    LlmBaseUrl,
    LlmRetries,
    LlmTimeout,
    Method,
    Model,
    NoCache,
    NoSam,
    Overwrite,
    Paper,
    Refine,
    Refiner,
    SamBackend,
    SamModel,
    Seed,
    Steps,
    Width,
    make_planner,
    render_settings,
)  # fmt: skip
from lmd.cli.progress import Bars, LazyRenderer, render_summary
from lmd.layouts import LayoutWarning


@app.command("generate")
def generate_command(
    caption: str = typer.Argument(..., metavar="CAPTION", help="What to draw, in any language."),
    output: Path = typer.Option(..., "-o", "--output-dir", help="Folder for the files."),
    llm: Llm = None,
    llm_base_url: LlmBaseUrl = None,
    no_cache: NoCache = False,
    llm_retries: LlmRetries = 4,
    llm_timeout: LlmTimeout = LLM_TIMEOUT,
    model: Model = None,
    method: Method = "lmd",
    steps: Steps = None,
    seed: Seed = 0,
    no_sam: NoSam = False,
    sam: SamModel = None,
    sam_backend: SamBackend = "auto",
    device: Device = None,
    dtype: Dtype = None,
    height: Height = None,
    width: Width = None,
    refine: Refine = False,
    refiner: Refiner = None,
    paper: Paper = False,
    overwrite: Overwrite = False,
) -> None:
    """Plan a layout for CAPTION and draw it: writes image.png, layout.json and layout.png.

    The layout is printed as soon as the LLM has planned it, before the models load. A
    folder that holds those files already keeps them: the new ones are numbered
    (image-001.png, ...) unless --overwrite.
    """
    from lmd.api import generate

    settings = render_settings(
        model=model, method=method, steps=steps, no_sam=no_sam, sam=sam, sam_backend=sam_backend,
        device=device, dtype=dtype, height=height, width=width, refine=refine, refiner=refiner,
        paper=paper,
    )  # fmt: skip
    planner = make_planner(llm, llm_base_url, no_cache, llm_retries, llm_timeout)

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

"""`lmd generate CAPTION -o DIR`: plan a layout with the LLM, then draw it."""

from __future__ import annotations

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
    Paper,
    Refine,
    SamCheckpoint,
    SamModel,
    Seed,
    Steps,
    Width,
    make_planner,
    render_settings,
)  # fmt: skip
from lmd.cli.plan import layout_warnings_to_stderr
from lmd.cli.progress import Bars


@app.command("generate")
def generate_command(
    caption: str = typer.Argument(..., help="What to draw, in any language."),
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
    sam_checkpoint: SamCheckpoint = None,
    device: Device = None,
    dtype: Dtype = None,
    height: Height = None,
    width: Width = None,
    refine: Refine = False,
    paper: Paper = False,
) -> None:
    """Plan a layout for CAPTION and draw it: writes image.png, layout.json and layout.png."""
    from lmd.api import Renderer, generate

    settings = render_settings(
        model=model, method=method, steps=steps, no_sam=no_sam, sam=sam,
        sam_checkpoint=sam_checkpoint, device=device, dtype=dtype, height=height, width=width,
        refine=refine, paper=paper,
    )  # fmt: skip
    planner = make_planner(llm, llm_base_url, no_cache, llm_retries, llm_timeout)
    renderer = Renderer(settings)
    bars = Bars()
    try:
        with layout_warnings_to_stderr():
            result = generate(
                caption, seed=seed, out_dir=output, progress=bars, planner=planner,
                renderer=renderer,
            )  # fmt: skip
    finally:
        bars.close()
    print(result.layout.to_llm_text())
    for path in result.files.values():
        print(f"wrote {path}")

"""Options several commands share, declared once (typer `Annotated` aliases) with their builders."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

LLM_PANEL = "LLM (stage 1)"
RENDER_PANEL = "Rendering (stage 2)"

Llm = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="litellm model string, e.g. gpt-4.1-mini, anthropic/..., ollama/llama3 (env LMD_LLM).",
        rich_help_panel=LLM_PANEL,
    ),
]
LlmBaseUrl = Annotated[
    str | None,
    typer.Option(
        "--llm-base-url",
        help="OpenAI-compatible server, e.g. http://localhost:8000/v1 (env LMD_LLM_BASE_URL).",
        rich_help_panel=LLM_PANEL,
    ),
]
NoCache = Annotated[
    bool,
    typer.Option(
        "--no-cache", help="Ask the LLM even if a cached reply exists.", rich_help_panel=LLM_PANEL
    ),
]
LlmRetries = Annotated[
    int,
    typer.Option(
        "--llm-retries",
        min=0,
        help="Retries of a failed request (timeouts, 429, 5xx, connection errors).",
        rich_help_panel=LLM_PANEL,
    ),
]
LlmTimeout = Annotated[
    float,
    typer.Option(
        "--llm-timeout",
        min=0.1,
        help="Seconds one LLM request may take in all, retries and their waits included.",
        rich_help_panel=LLM_PANEL,
    ),
]
LLM_TIMEOUT = 120.0

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Hub id or local diffusers folder, SD 1.x, 2.x or SDXL (default: SD 1.5, or "
        "GLIGEN for lmd+); random:tiny / random:sd15-tiny / random:sd15 / random:sd2-tiny / "
        "random:sdxl-tiny / "
        "random:sdxl for random weights.",
        rich_help_panel=RENDER_PANEL,
    ),
]
Method = Annotated[
    str | None,
    typer.Option(
        "--method",
        help="lmd (the paper's method, the default), lmd+ (with GLIGEN) or sd (plain Stable "
        "Diffusion).",
        rich_help_panel=RENDER_PANEL,
    ),
]
Steps = Annotated[
    int | None,
    typer.Option(
        "--steps",
        min=1,
        max=1000,
        help="Denoising steps (default 50).",
        rich_help_panel=RENDER_PANEL,
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.", rich_help_panel=RENDER_PANEL)]
NoSam = Annotated[
    bool,
    typer.Option(
        "--no-sam",
        help="Masks from attention only, without SAM.",
        rich_help_panel=RENDER_PANEL,
    ),
]
SamModel = Annotated[
    str | None,
    typer.Option(
        "--sam",
        help="SAM: a hub id (default facebook/sam-vit-base), a transformers SAM folder, a "
        "segment-anything .pth file, vit_b/vit_l/vit_h, or random:tiny.",
        rich_help_panel=RENDER_PANEL,
    ),
]
SamBackend = Annotated[
    str,
    typer.Option(
        "--sam-backend",
        help="auto (a .pth file: segment-anything; else transformers), transformers, or "
        "segment-anything (needs the segment-anything extra).",
        rich_help_panel=RENDER_PANEL,
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="cuda, cuda:1, mps or cpu (default: the best there is).",
        rich_help_panel=RENDER_PANEL,
    ),
]
Dtype = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        help="fp16, bf16 or fp32 (default: fp16 on CUDA, else fp32).",
        rich_help_panel=RENDER_PANEL,
    ),
]
Height = Annotated[
    int | None,
    typer.Option(
        "--height", min=8, help="Image height (default: the model's).", rich_help_panel=RENDER_PANEL
    ),
]
Width = Annotated[
    int | None,
    typer.Option(
        "--width", min=8, help="Image width (default: the model's).", rich_help_panel=RENDER_PANEL
    ),
]
Refine = Annotated[
    bool,
    typer.Option(
        "--refine",
        help="Finish with the SDXL refiner (img2img, strength 0.3).",
        rich_help_panel=RENDER_PANEL,
    ),
]
Refiner = Annotated[
    str | None,
    typer.Option(
        "--refiner",
        help="Refiner hub id or local folder (default stabilityai/stable-diffusion-xl-refiner-1.0"
        "); implies --refine.",
        rich_help_panel=RENDER_PANEL,
    ),
]
Paper = Annotated[
    bool,
    typer.Option(
        "--paper",
        help="Compute what the paper's code computes (LMDConfig.paper()), its flaws included.",
        rich_help_panel=RENDER_PANEL,
    ),
]

Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace image.png, layout.json and layout.png in the folder (default: keep them "
        "and number the new files image-001.png, layout-001.json, ...).",
    ),
]


def make_planner(
    llm: str | None,
    llm_base_url: str | None,
    no_cache: bool,
    llm_retries: int,
    llm_timeout: float = LLM_TIMEOUT,
):
    """The planner the options ask for; each request and retry is announced on stderr."""
    from lmd.cli.progress import say_asking
    from lmd.prompts import Planner

    return Planner(
        model=llm, llm_base_url=llm_base_url, cache=not no_cache, max_retries=llm_retries,
        llm_timeout=llm_timeout, on_retry=retry_to_stderr, on_ask=say_asking,
    )  # fmt: skip


def retry_to_stderr(notice) -> None:
    """One `note:` line per LLM retry: what failed and how long until the next try."""
    print(f"note: {notice}", file=sys.stderr, flush=True)


def render_settings(
    *,
    model: str | None,
    method: str | None,
    steps: int | None,
    no_sam: bool,
    sam: str | None,
    sam_backend: str = "auto",
    device: str | None,
    dtype: str | None,
    height: int | None,
    width: int | None,
    refine: bool,
    refiner: str | None = None,
    paper: bool = False,
):
    """`RenderSettings` from the shared flags, checked before any LLM call or model load."""
    from lmd.api import RenderSettings

    return RenderSettings(
        model=model,
        method=method or "lmd",
        steps=steps,
        sam=not no_sam,
        sam_model=sam,
        sam_backend=sam_backend,
        device=device,
        dtype=dtype,
        height=height,
        width=width,
        refine=refine,
        refiner_model=refiner,
        paper=paper,
    ).check()

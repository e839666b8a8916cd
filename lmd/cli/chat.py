"""`lmd chat`: ask for a picture, then edit it by talking; the session is saved every turn."""

from __future__ import annotations

import sys
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
    Steps,
    Width,
    make_planner,
    render_settings,
)  # fmt: skip
from lmd.cli.progress import Bars


@app.command("chat")
def chat_command(
    session: Path | None = typer.Option(
        None,
        "--session",
        help="Session file: resumed if it exists, else created. Default: OUTPUT_DIR/session.json.",
    ),  # fmt: skip
    output: Path = typer.Option(Path("lmd-chat"), "-o", "--output-dir", help="Folder for images."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of a new session (default: random)."
    ),
    llm: Llm = None,
    llm_base_url: LlmBaseUrl = None,
    no_cache: NoCache = False,
    llm_retries: LlmRetries = 4,
    llm_timeout: LlmTimeout = LLM_TIMEOUT,
    model: Model = None,
    method: Method = "lmd",
    steps: Steps = None,
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
    """Chat to make and edit a picture: one request per line; /help lists the commands."""
    from conversation import Conversation, run_repl

    settings = render_settings(
        model=model, method=method, steps=steps, no_sam=no_sam, sam=sam,
        sam_checkpoint=sam_checkpoint, device=device, dtype=dtype, height=height, width=width,
        refine=refine, paper=paper,
    )  # fmt: skip
    planner = make_planner(llm, llm_base_url, no_cache, llm_retries, llm_timeout)
    session_path = session or output / "session.json"
    resumed = session_path.exists()
    meta = {"model": settings.model, "method": settings.method, "steps": settings.steps}
    # Open (and so validate) the session before the slow model load.
    conversation = Conversation.open(
        session_path, planner, _LazyRenderer(settings), out_dir=output, seed=seed, meta=meta
    )
    if resumed:
        print(
            f"resumed {session_path} ({len(conversation.turns)} turns); /help for commands",
            file=sys.stderr,
        )
    bars = Bars()
    try:
        code = run_repl(conversation, sys.stdin, sys.stdout, sys.stderr, progress=bars)
    finally:
        bars.close()
    print(f"session saved in {session_path}", file=sys.stderr)
    raise typer.Exit(code)


class _LazyRenderer:
    """Loads the models on the first picture, so `/help` or a bad session file costs nothing."""

    def __init__(self, settings):
        self.settings = settings
        self._renderer = None

    def __call__(self, request):
        if self._renderer is None:
            from lmd.api import Renderer

            self._renderer = Renderer(self.settings)
        return self._renderer(request)

"""`lmd web`: the conversation in the browser, one screen, over `Conversation` + `Renderer`."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
import tempfile
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
    Refiner,
    SamBackend,
    SamModel,
    Steps,
    Width,
    make_planner,
    render_settings,
)  # fmt: skip
from lmd.layouts.errors import LmdError

INSTALL = 'pip install -e ".[web]" (or pip install "lmd[web]")'


def check_port(host: str, port: int) -> None:
    """Fail with a message naming the flags when `host`:`port` cannot be served on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself does
        try:
            s.bind((host.strip("[]"), port))
        except OSError as e:
            raise LmdError(
                f"cannot serve on --host {host} --port {port} ({e.strerror or e}); "
                "pick another --port"
            ) from None


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command("web")
def web_command(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to serve on; only this machine by default."
    ),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to serve on."),
    concurrency: int = typer.Option(
        1, "--concurrency", min=1, help="Pictures drawn at once; others wait in the queue."
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output-dir",
        help="Keep each browser session's pictures and session.json here "
        "(default: a temporary folder, removed when the server stops).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of new conversations (default: random)."
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
    sam_backend: SamBackend = "auto",
    device: Device = None,
    dtype: Dtype = None,
    height: Height = None,
    width: Width = None,
    refine: Refine = False,
    refiner: Refiner = None,
    paper: Paper = False,
) -> None:
    """Serve the chat, the picture and its editable layout on one page in the browser."""
    try:
        from lmd.web.app import Defaults, build_app, launch, make_handlers
    except ImportError as e:
        raise LmdError(
            f"lmd web needs gradio and gradio_image_annotation (the web extra), which did not "
            f"import ({e}); install them with: {INSTALL}"
        ) from None

    from lmd.prompts import default_model

    settings = render_settings(
        model=model, method=method, steps=steps, no_sam=no_sam, sam=sam, sam_backend=sam_backend,
        device=device, dtype=dtype, height=height, width=width, refine=refine, refiner=refiner,
        paper=paper,
    )  # fmt: skip
    if seed is not None and not 0 <= seed < 2**31:
        raise typer.BadParameter(f"must be in [0, 2**31), not {seed}", param_hint="--seed")
    if not is_loopback(host):
        print(
            f"warning: --host {host} lets anyone who can reach this machine use the page "
            "(and its GPU)",
            file=sys.stderr,
        )
    check_port(host, port)
    root = output or Path(tempfile.mkdtemp(prefix="lmd-web-"))
    root.mkdir(parents=True, exist_ok=True)

    def planner(name, base_url):
        return make_planner(
            name or llm, base_url or llm_base_url, no_cache, llm_retries, llm_timeout
        )

    handlers = make_handlers(
        root, settings, planner, concurrency=concurrency, remove_on_close=output is None
    )
    demo = build_app(
        handlers,
        Defaults(
            llm=llm or default_model(),
            llm_base_url=llm_base_url or os.environ.get("LMD_LLM_BASE_URL", ""),
            seed=seed,
        ),
    )
    try:
        url = launch(demo, host=host, port=port, root=root)
        print(f"lmd web: open {url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        demo.block_thread()
    finally:
        demo.close()
        if output is None:
            shutil.rmtree(root, ignore_errors=True)

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
from lmd.cli.options import LlmOptions, llm_options, render_options, seed_option
from lmd.layouts.errors import LmdError
from lmd.settings import RenderSettings

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
@llm_options
@render_options()
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
    seed: int | None = seed_option(None, "Seed of new conversations (default: random)."),
    *,
    llm_options: LlmOptions,
    settings: RenderSettings,
) -> None:
    """Serve the chat, the picture and its editable layout on one page in the browser."""
    try:
        from lmd.web.app import Defaults, build_app, launch, make_handlers
    except ImportError as e:
        raise LmdError(
            f"lmd web needs gradio, which did not import ({e}); install it with: {INSTALL}"
        ) from None

    from lmd.prompts import default_llm

    settings.check()
    if not is_loopback(host):
        print(
            f"warning: --host {host} lets anyone who can reach this machine use the page "
            "(and its GPU)",
            file=sys.stderr,
        )
    check_port(host, port)
    root = output or Path(tempfile.mkdtemp(prefix="lmd-web-"))
    root.mkdir(parents=True, exist_ok=True)

    handlers = make_handlers(
        root, settings, llm_options.planner, concurrency=concurrency,
        remove_on_close=output is None,
    )  # fmt: skip
    demo = build_app(
        handlers,
        Defaults(
            llm=llm_options.llm or default_llm(),
            llm_base_url=llm_options.llm_base_url or os.environ.get("LMD_LLM_BASE_URL", ""),
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

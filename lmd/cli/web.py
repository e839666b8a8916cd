"""`lmd web`: the conversation in the browser, one screen, over `Conversation` + `Renderer`."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.options import (
    LlmOptions,
    llm_options,
    options_of,
    render_options,
    retry_to_stderr,
    seed_option,
)  # fmt: skip
from lmd.layouts.errors import LmdError
from lmd.settings import RenderSettings
from lmd.web.cache import use_private_cache
from lmd.web.limits import WebLimits

INSTALL = 'pip install -e ".[web]" (or pip install "lmd[web]")'
INTERRUPTED = 130


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


SHARING = "Sharing"
TERMINATED = 143
"""Exit code after SIGTERM (128 + 15, as shells report it); Ctrl-C exits 130."""


class _Terminated(Exception):
    """SIGTERM arrived: stop serving and clean up, as Ctrl-C does."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated


@app.command("web")
@options_of(WebLimits, "limits", SHARING)
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
    allow_llm: list[str] = typer.Option(
        [],
        "--allow-llm",
        metavar="MODEL[@URL]",
        rich_help_panel=SHARING,
        help="Another LLM visitors may choose, asked with this server's keys (repeatable); "
        "--llm and --llm-base-url are always offered.",
    ),  # fmt: skip
    visitor_llm: bool | None = typer.Option(
        None,
        "--visitor-llm/--no-visitor-llm",
        rich_help_panel=SHARING,
        help="Let visitors use their own OpenAI-compatible server with their own key (never "
        "this server's). Default: on for 127.0.0.1 only.",
    ),  # fmt: skip
    *,
    limits: WebLimits,
    llm_options: LlmOptions,
    settings: RenderSettings,
) -> None:
    """Serve the chat, the picture and its editable layout on one page in the browser.

    Ctrl-C or SIGTERM stops it (exit 130, 143) and removes its temporary folder.
    """
    _check_gradio()
    # 1. Check inputs, before anything is served
    settings.check()
    if settings.steps is not None and settings.steps > limits.max_steps:
        more = f"{settings.steps} is more than --max-steps {limits.max_steps}"
        raise typer.BadParameter(more, param_hint="--steps")
    llms = _llm_choices(
        llm_options.llm, llm_options.llm_base_url, allow_llm,
        is_loopback(host) if visitor_llm is None else visitor_llm,
        cache=llm_options.cache, max_retries=llm_options.llm_retries,
        llm_timeout=llm_options.llm_timeout,
        max_boxes=limits.max_boxes,
    )  # fmt: skip
    if not is_loopback(host):
        print(
            f"warning: --host {host} lets anyone who can reach this machine use the page "
            "(and its GPU)",
            file=sys.stderr,
        )
        if llms.visitor_servers:
            print(
                "warning: --visitor-llm lets visitors make this server send LLM requests to "
                "addresses of their choosing (with their own keys, never this server's)",
                file=sys.stderr,
            )
    check_port(host, port)
    # 2. The folders: the sessions' (temporary unless -o), Gradio's private cache inside it
    # (set before gradio is imported: it reads the cache folder at import too)
    root = output or Path(tempfile.mkdtemp(prefix="lmd-web-"))
    root.mkdir(parents=True, exist_ok=True)
    cache = use_private_cache(root)
    # 3. Serve until Ctrl-C or SIGTERM; clean up either way
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    demo = None
    try:
        try:
            from lmd.web.app import Defaults, build_app, launch, make_handlers
        except ImportError as e:
            raise LmdError(
                f"lmd web needs gradio and gradio_image_annotation (the web extra), which did "
                f"not import ({e}); install them with: {INSTALL}"
            ) from None
        handlers = make_handlers(
            root, settings, llms, concurrency=concurrency, limits=limits,
            remove_on_close=output is None,
        )  # fmt: skip
        demo = build_app(handlers, Defaults(seed=seed))
        url = launch(
            demo, host=host, port=port, root=root, max_upload_bytes=limits.max_upload_bytes
        )
        print(f"lmd web: open {url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except _Terminated:
        code = TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
        if demo is not None:
            demo.close()
        shutil.rmtree(cache, ignore_errors=True)
        if output is None:
            shutil.rmtree(root, ignore_errors=True)
    print("lmd web: stopped", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def _check_gradio() -> None:
    """Say in one line how to install the web extra when gradio or its box editor is not there
    (before anything is made)."""
    for module in ("gradio", "gradio_image_annotation"):
        try:
            found = importlib.util.find_spec(module) is not None
            error = f"No module named {module!r}"
        except ImportError as e:
            found, error = False, str(e)
        if not found:
            raise LmdError(
                f"lmd web needs gradio and gradio_image_annotation (the web extra), which did "
                f"not import ({error}); install them with: {INSTALL}"
            )


def _llm_choices(
    llm: str | None,
    llm_base_url: str | None,
    allowed: list[str],
    visitors: bool,
    *,
    cache: bool,
    **options,
):
    """The LLMs visitors may choose: the server's own, the allowed ones, and (with
    `visitors`) a server of their own."""
    from lmd.prompts import default_llm
    from lmd.web.llms import LlmChoice, LlmChoices, check_url

    base_url = llm_base_url or os.environ.get("LMD_LLM_BASE_URL") or None
    if base_url:
        check_url(base_url, "--llm-base-url")
    try:
        choices = [LlmChoice.parse(a) for a in allowed]
    except ValueError as e:
        message = str(e).removeprefix("--allow-llm ")
        raise typer.BadParameter(message, param_hint="--allow-llm") from None
    return LlmChoices(
        server=LlmChoice(llm or default_llm(), base_url),
        allowed=choices,
        visitor_servers=visitors,
        cache=cache,
        options={**options, "on_retry": retry_to_stderr},
    )

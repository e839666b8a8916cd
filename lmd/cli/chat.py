"""`lmd chat`: ask for a picture, then edit it by talking; the session is saved every turn."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.errors import FLAGS
from lmd.cli.options import LlmOptions, given, llm_options, render_options, seed_option
from lmd.cli.progress import Bars, LazyRenderer
from lmd.settings import RenderSettings

DEFAULT_FOLDER = Path("lmd-chat")
KEPT = ("model", "method", "steps", "height", "width")
"""Settings a session keeps: a resumed session draws with them unless a flag overrides one."""
REDRAWN = (
    "note: the next picture draws every object again (the per-object work of earlier runs is "
    "kept in memory, not in the session); after it, only what changes is redrawn"
)
LLM_KEPT = ("llm", "llm_base_url")
"""The LLM a session talks to, kept the same way (its API key never is)."""
_TURN_FILE = re.compile(r"turn-(\d+)\.png")
SESSION_HELP = "Session file: resumed if it exists, else created. Default: OUTPUT_DIR/session.json."
OUT_HELP = "Folder for the pictures (default: the session's folder, else ./lmd-chat)."


@app.command("chat")
@llm_options
@render_options()
def chat_command(
    session: Path | None = typer.Option(None, "--session", metavar="FILE", help=SESSION_HELP),
    output: Path | None = typer.Option(None, "-o", "--output-dir", metavar="DIR", help=OUT_HELP),
    seed: int | None = seed_option(None, "Seed of a new session (default: random)."),
    *,
    llm_options: LlmOptions,
    settings: RenderSettings,
) -> None:
    """Chat to make and edit a picture: one request per line; /help lists the commands.

    A resumed session keeps the model, method, steps, size and LLM (--llm, --llm-base-url) it
    was started with; a flag given now overrides that setting for this run (and says so).
    """
    from lmd.api import check_out_dir
    from lmd.conversation import Conversation, Session, run_repl
    from lmd.layouts.paths import default_cache_dir

    # 1. Where the session and its pictures live; read the session before anything slow.
    session_path = session.expanduser() if session else (output or DEFAULT_FOLDER) / "session.json"
    out_dir = output.expanduser() if output else session_path.parent
    check_out_dir(out_dir)
    saved = Session.load(session_path) if session_path.exists() else None
    _check_no_other_session(out_dir, saved.renders if saved else 0, session_path)

    # 2. The settings: the session's own unless a flag overrides them; checked before the LLM.
    flags = given(*KEPT)
    kept = {k: v for k, v in (saved.meta if saved else {}).items() if k in KEPT}
    settings = settings.replace(**{k: v for k, v in kept.items() if k not in flags}).check()
    asked = {"llm": llm_options.llm, "llm_base_url": llm_options.llm_base_url}
    talked = {k: v for k, v in (saved.meta if saved else {}).items() if k in LLM_KEPT}
    planner = llm_options.planner(
        *(asked[k] if asked[k] is not None else talked.get(k) for k in LLM_KEPT)
    )
    meta = {k: getattr(settings, k) for k in KEPT}
    meta.update(llm=planner.model, llm_base_url=planner.llm_base_url)  # never the API key
    renderer = LazyRenderer(settings)
    conversation = Conversation.open(
        session_path, planner, renderer, out_dir=out_dir, seed=seed, meta=meta
    )
    if saved is not None:
        at = f" at {planner.llm_base_url}" if planner.llm_base_url else ""
        print(f"resumed {session_path} ({len(conversation.turns)} turns, LLM {planner.model}"
              f"{at}); /help for commands", file=sys.stderr)  # fmt: skip
        overrides = {k: getattr(settings, k) for k in flags}
        overrides.update({k: v for k, v in asked.items() if v is not None})
        for line in _changes({**kept, **talked}, overrides):
            print(line, file=sys.stderr)
        if conversation.turns:
            print(REDRAWN, file=sys.stderr)
    else:
        print(f"new session {session_path} (seed {conversation.seed}): say what to draw; "
              "/help for commands", file=sys.stderr)  # fmt: skip

    # 3. Talk.
    bars = Bars()
    try:
        code = run_repl(
            conversation, sys.stdin, sys.stdout, sys.stderr, progress=bars,
            prepare=renderer.load, history_file=default_cache_dir() / "chat_history",
        )  # fmt: skip
    finally:
        bars.close()
        conversation.close()  # lets go of the session file's lock
        if session_path.exists():
            print(f"session saved in {session_path}", file=sys.stderr)
        else:
            print("nothing drawn, so no session was saved", file=sys.stderr)
    raise typer.Exit(code)


def _changes(kept: dict, flags: dict) -> list[str]:
    """One line per flag that overrides a setting the resumed session was drawn with."""
    lines = []
    for key, value in flags.items():
        if key in kept and value != kept[key]:
            before = "the default" if kept[key] is None else str(kept[key])
            lines.append(
                f"note: {FLAGS[key]} {value} overrides the session's {before} for the "
                "pictures drawn now"
            )
    return lines


def _check_no_other_session(out_dir: Path, renders: int, session_path: Path) -> None:
    """Refuse a folder whose next `turn-NNN.png` files another session already wrote."""
    from lmd.conversation import SessionError

    if not out_dir.is_dir():
        return
    numbers = sorted(
        int(m.group(1)) for p in out_dir.iterdir() if (m := _TURN_FILE.fullmatch(p.name))
    )
    taken = [n for n in numbers if n > renders]
    if taken:
        raise SessionError(
            f"{out_dir} already holds turn-{taken[0]:03d}.png from another session, which "
            f"{session_path} would overwrite; choose another -o, or resume that session with "
            "--session"
        )

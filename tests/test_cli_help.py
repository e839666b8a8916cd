"""`lmd X --help` as a person reads it at 80 columns, and in a pipe: nothing the formatter eats
(`{caption: [reply, ...]}`), cuts (`--num_processes,--num-p...`) or breaks early."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmd.cli import app, run
from lmd.cli.app import LAZY_HELP, click_module

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 80


def commands() -> list[list[str]]:
    import typer.main

    root = typer.main.get_command(app)
    ctx = click_module().Context(root)
    found = []
    for name in root.list_commands(ctx):
        sub = root.get_command(ctx, name)
        if hasattr(sub, "list_commands"):
            found += [[name, inner] for inner in sub.list_commands(click_module().Context(sub))]
        else:
            found.append([name])
    return found


def command_of(path: list[str]):
    import typer.main

    group = typer.main.get_command(app)
    for name in path:
        group = group.get_command(click_module().Context(group), name)
    return group


def filled(lines: list[str]) -> list[str]:
    """Lines broken before the width was used: a line whose next line (same paragraph, same
    indent) starts with a word that would have fitted on it."""
    early = []
    for line, after in zip(lines, lines[1:], strict=False):
        indent = len(after) - len(after.lstrip())
        if not line.strip() or not after.strip() or not line.startswith(" " * indent):
            continue
        if after[indent : indent + 1] in "-[" or line[indent : indent + 1] == "-":
            continue  # the next option, or click's [default: ...] extras
        word = after.split()[0]
        if len(line) + 1 + len(word) <= WIDTH - 2:  # click keeps 2 columns free
            early.append(f"{line!r} / {after!r}")
    return early


@pytest.mark.parametrize("path", commands(), ids=" ".join)
def test_help_at_80_columns_keeps_every_word_and_fills_its_lines(path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    assert run([*path, "--help"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= WIDTH for line in lines), max(lines, key=len)
    assert "…" not in out and "─" not in out  # nothing cut, no boxes drawn
    flat = " ".join(out.split())
    command = command_of(path)
    assert " ".join(command.help.split()) in flat  # the whole description, rewrapped
    for param in command.params:
        shown = ", ".join(param.opts) if param.param_type_name == "option" else ""
        assert shown in flat, shown  # every name of every option, whole
        text = LAZY_HELP[param.name]() if param.name in LAZY_HELP else param.help or ""
        assert " ".join(text.split()) in flat, param.name  # its help, every word
    assert filled(lines) == []


def test_braces_and_brackets_in_help_are_shown_as_written(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    assert run(["bench", "stage1", "--help"]) == 0
    assert "JSON {caption: [reply, ...]}" in " ".join(capsys.readouterr().out.split())


def test_help_in_a_pipe_is_plain_and_80_columns():
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run(
        [sys.executable, "-m", "lmd", "batch", "--help"], cwd=ROOT, capture_output=True,
        text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    assert "--num_processes, --num-processes" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no colour codes in a pipe
    assert filled(lines) == []

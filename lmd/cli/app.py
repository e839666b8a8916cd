"""The typer application every CLI module registers its commands on, and how help looks.

Help is plain text at the terminal's width (80 columns in a pipe): paragraphs are rewrapped,
option names and defaults are never cut, words are not broken at hyphens (hub ids stay whole),
and options are listed under their panel's heading (`rich_help_panel`).
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable
from typing import Any

import typer
import typer.core

LAZY_HELP: dict[str, Callable[[], str]] = {}
"""Help made when it is shown, by parameter name (`--method` lists the method registry, which
imports torch: not at every start of `lmd`)."""


def click_module():
    """The click typer runs on: its own copy (typer >= 0.26) or the click package (older)."""
    return getattr(typer.core, "_click", None) or importlib.import_module("click")


_click = click_module()


class HelpFormatter(_click.HelpFormatter):
    """click's formatter, except that help texts break between words only, never at hyphens."""

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        first = min(max((len(term) for term, _ in rows), default=0), col_max) + col_spacing
        width = max(self.width - first - 2, 10)  # what click leaves for the second column
        wrapped = [
            (term, "\b\n" + textwrap.fill(text, width, break_on_hyphens=False) if text else text)
            for term, text in rows
        ]  # "\b" tells click to keep these lines as they are
        super().write_dl(wrapped, col_max, col_spacing)


class Context(_click.Context):
    formatter_class = HelpFormatter


class Command(typer.core.TyperCommand):
    """A command whose help groups options under their panels, in plain text."""

    context_class = Context

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):
            if param.name in LAZY_HELP:
                param.help = LAZY_HELP[param.name]()
        super().format_help(ctx, formatter)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            # Older typer escapes brackets for rich even when help is plain: `\[default: 4]`.
            record = (record[0], record[1].replace("\\[", "["))
            if param.param_type_name == "argument":
                title = "Arguments"
            else:
                title = getattr(param, "rich_help_panel", None) or "Options"
            sections.setdefault(title, []).append(record)
        for title, records in sections.items():
            with formatter.section(title):
                formatter.write_dl(records)


class Group(typer.core.TyperGroup):
    context_class = Context


class App(typer.Typer):
    """A `typer.Typer` whose commands are `Command`s."""

    def command(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)


app = App(
    name="lmd",
    help="LLM-grounded Diffusion: plan a layout with an LLM, draw it, edit it by talking.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=Group,
)
bench_app = App(
    help="Benchmarks: stage-1 layout and stage-2 image accuracy, rendering and edit speed.",
    rich_markup_mode=None,
    cls=Group,
)
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        from lmd import __version__

        print(f"lmd {__version__}")
        raise typer.Exit(0)


def _usage_without_command(ctx: typer.Context) -> None:
    """No command given: a usage error (the usage block, exit 2) the same on every typer."""
    if ctx.invoked_subcommand is None:
        names = ", ".join(ctx.command.list_commands(ctx))
        ctx.fail(f"Missing command: one of {names}.")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _usage_without_command(ctx)


@bench_app.callback(invoke_without_command=True)
def _bench(ctx: typer.Context) -> None:
    _usage_without_command(ctx)

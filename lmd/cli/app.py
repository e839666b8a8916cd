"""The typer application every CLI module registers its commands on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lmd",
    help="LLM-grounded Diffusion: plan a layout with an LLM, draw it, edit it by talking.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Benchmarks: stage-1 layout and stage-2 image accuracy, rendering and edit speed."
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

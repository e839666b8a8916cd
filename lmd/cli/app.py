"""The typer application every CLI module registers its commands on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lmd",
    help="LLM-grounded Diffusion: plan a layout with an LLM, draw it, edit it by talking.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Benchmarks: stage-1 layout and stage-2 image accuracy, rendering and edit speed.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")

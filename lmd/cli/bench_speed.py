"""`lmd bench speed`: plain SD against LMD on the same layout (seconds, UNet work, memory)."""

from __future__ import annotations

import typer

from lmd.cli.app import bench_app
from lmd.cli.options import Device, Dtype, Height, Paper, Steps, Width
from lmd.cli.progress import Bars


@bench_app.command("speed")
def speed_command(
    model: str = typer.Option(
        "random:sd15", "--model", help="Hub id, local folder, random:sd15 or random:tiny."
    ),
    boxes: int = typer.Option(3, "--boxes", min=0, help="Objects in the layout."),
    steps: Steps = None,
    device: Device = None,
    dtype: Dtype = None,
    height: Height = None,
    width: Width = None,
    worst_case: bool = typer.Option(
        False, "--worst-case", help="Guidance threshold 0: every guidance iteration runs."
    ),
    paper: Paper = False,
) -> None:
    """Render one layout with sd and with lmd; the last line is `ratio lmd/sd: X.XX`."""
    from lmd.bench.speed import bench_speed

    bars = Bars()
    try:
        report = bench_speed(
            model, boxes=boxes, steps=steps, device=device, dtype=dtype, height=height,
            width=width, worst_case=worst_case, progress=bars, paper=paper,
        )  # fmt: skip
    finally:
        bars.close()
    for line in report.lines():
        print(line)

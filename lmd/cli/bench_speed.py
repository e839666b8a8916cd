"""`lmd bench speed`: plain SD against LMD on the same layout (seconds, UNet work, memory)."""

from __future__ import annotations

import sys

import typer

from lmd.cli.app import bench_app
from lmd.cli.options import render_options
from lmd.cli.progress import Bars, say
from lmd.settings import RenderSettings

SPEED_SETTINGS = (
    "model", "method", "steps", "device", "dtype", "height", "width", "paper", "migc_checkpoint",
)  # fmt: skip

CPU_SIZED = "lmd bench speed --steps 4 --height 256 --width 256"


@bench_app.command("speed")
@render_options(SPEED_SETTINGS, model="random:sd15")
def speed_command(
    boxes: int = typer.Option(3, "--boxes", min=0, help="Objects in the layout."),
    worst_case: bool = typer.Option(
        False, "--worst-case", help="Guidance threshold 0: every guidance iteration runs."
    ),
    *,
    settings: RenderSettings,
) -> None:
    """Render one layout with sd and with a method (default lmd); the last line is
    `ratio METHOD/sd: X.XX`."""
    from lmd.bench.speed import bench_speed
    from lmd.models import resolve_device

    model, steps, device = settings.model_id, settings.steps, settings.device
    settings.replace(sam=False).check()
    tiny = model.startswith("random:") and model.endswith("tiny")  # seconds at any setting
    if steps is None and not tiny and resolve_device(device).type == "cpu":
        quick = CPU_SIZED if model == "random:sd15" else f"{CPU_SIZED} --model {model}"
        print(
            f"warning: 50 steps at full size take hours on a CPU; a shorter run (minutes): {quick}",
            file=sys.stderr,
            flush=True,
        )

    say(f"loading model {model} ...")
    bars = Bars()

    def timing(name: str) -> None:
        say(f"timing {name} ...")
        bars.begin()

    try:
        report = bench_speed(
            model, boxes=boxes, steps=steps, device=device, dtype=settings.dtype,
            height=settings.height, width=settings.width, worst_case=worst_case, progress=bars,
            paper=settings.paper, method=settings.drawing_method(),
            on_run=timing,
        )  # fmt: skip
    finally:
        bars.close()
    for line in report.lines():
        print(line)

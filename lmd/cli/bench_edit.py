"""`lmd bench edit`: how much cheaper an edit that moves one object is than a fresh picture."""

from __future__ import annotations

from lmd.cli.app import bench_app
from lmd.cli.options import render_options
from lmd.cli.progress import Bars, load_renderer
from lmd.settings import RenderSettings

EDIT_SETTINGS = ("model", "method", "steps", "sam", "device", "dtype", "height", "width", "paper")


@bench_app.command("edit")
@render_options(EDIT_SETTINGS)
def edit_command(*, settings: RenderSettings) -> None:
    """Render a 3-object picture, then move one object; print both times and their ratio."""
    from lmd.bench.edit import bench_edit

    settings.check()
    if settings.method == "sd":
        raise ValueError("--method sd draws no objects on their own, so it has nothing to reuse")
    renderer = load_renderer(settings)
    bars = Bars()
    try:
        timing = bench_edit(renderer, progress=bars)
    finally:
        bars.close()
    print(f"model: {settings.model_id}  method: {settings.method}")
    for line in timing.lines():
        print(line)

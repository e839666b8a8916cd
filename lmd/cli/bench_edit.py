"""`lmd bench edit`: how much cheaper an edit that moves one object is than a fresh picture."""

from __future__ import annotations

from lmd.cli.app import bench_app
from lmd.cli.options import (
    Device,
    Dtype,
    Height,
    Method,
    Model,
    NoSam,
    Paper,
    Steps,
    Width,
    render_settings,
)
from lmd.cli.progress import Bars, load_renderer


@bench_app.command("edit")
def edit_command(
    model: Model = None,
    method: Method = "lmd",
    steps: Steps = None,
    no_sam: NoSam = False,
    device: Device = None,
    dtype: Dtype = None,
    height: Height = None,
    width: Width = None,
    paper: Paper = False,
) -> None:
    """Render a 3-object picture, then move one object; print both times and their ratio."""
    from lmd.bench.edit import bench_edit

    settings = render_settings(
        model=model, method=method, steps=steps, no_sam=no_sam, sam=None, device=device,
        dtype=dtype, height=height, width=width, refine=False, paper=paper,
    )  # fmt: skip
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

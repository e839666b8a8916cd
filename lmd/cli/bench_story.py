"""`lmd bench story`: the cost of a story of 2, 4, 8 pictures with shared attention."""

from __future__ import annotations

import typer

from lmd.cli.app import bench_app
from lmd.cli.options import render_options
from lmd.cli.progress import load_renderer
from lmd.settings import RenderSettings

STORY_SETTINGS = (
    "model", "method", "steps", "sam", "device", "dtype", "height", "width", "migc_checkpoint",
)  # fmt: skip


@bench_app.command("story")
@render_options(STORY_SETTINGS)
def story_command(
    counts: str = typer.Option(
        "2,4,8", "--counts", metavar="N,N,...", help="Story lengths to time, comma-separated."
    ),
    anchors: int = typer.Option(2, "--anchors", min=1, metavar="N", help="Anchor pictures."),
    *,
    settings: RenderSettings,
) -> None:
    """Draw stories of the cat in 2, 4, 8 scenes, timed with shared attention and without."""
    from lmd.bench.story import HEADER, bench_story
    from lmd.controller import ConsistencySettings

    try:
        sizes = [int(c) for c in counts.split(",") if c.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{counts!r} is not a list of numbers", param_hint="--counts"
        ) from None
    if not sizes or any(n < 1 or n > 64 for n in sizes):
        raise typer.BadParameter("every count must be from 1 to 64", param_hint="--counts")
    settings = settings.replace(refine=False).check()
    renderer = load_renderer(settings)
    renderer.consistency = ConsistencySettings(anchors=anchors)
    h, w = renderer.controller.native_size
    size = f"{settings.height or h}x{settings.width or w}"
    print(f"model: {settings.model_id}  method: {settings.method}  size: {size}  "
          f"steps: {renderer.controller.config.steps}  anchors: {anchors}", flush=True)  # fmt: skip
    print(HEADER, flush=True)
    for timing in bench_story(renderer, sizes):
        print(timing.line(), flush=True)

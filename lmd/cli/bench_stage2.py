"""`lmd bench stage2 DIR`: score a batch of the LMD benchmark the way the paper does (OWL-ViT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from lmd.cli.app import bench_app
from lmd.cli.options import render_options
from lmd.settings import RenderSettings


@bench_app.command("stage2")
@render_options(["device"])
def stage2(
    folder: Path = typer.Argument(
        ..., metavar="DIR", help="A folder made by `lmd batch lmd-benchmark -o DIR`."
    ),
    detector: str = typer.Option(
        "google/owlvit-base-patch32",
        "--detector",
        help="OWL-ViT hub id or local folder; random:tiny for random weights.",
    ),  # fmt: skip
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Pictures per detector call."),
    as_json: Path | None = typer.Option(
        None, "--json", help="Also write each picture's result (detections, pass) to this file."
    ),
    failures: bool = typer.Option(False, "--failures", help="List failed pictures on stderr."),
    *,
    settings: RenderSettings,
) -> None:
    """Image-level accuracy on the LMD benchmark: one line per task, then overall."""
    from tqdm import tqdm

    from lmd.batch.results import drawn_jobs
    from lmd.bench import stage2 as bench
    from lmd.bench.detector import load_detector

    jobs = bench.batch_jobs(drawn_jobs(folder))
    if not jobs.scorable:
        raise ValueError(
            f"{str(folder)!r} has no drawn pictures of LMD benchmark captions to score "
            f"({jobs.not_drawn} jobs without a picture, {jobs.not_benchmark} other captions)"
        )
    model = load_detector(detector, device=settings.device)
    bar = tqdm(total=len(jobs.scorable), desc="stage2", unit="image", file=sys.stderr)
    try:
        report = bench.score_batch(
            model, jobs, batch_size=batch_size,
            progress=lambda done, total: bar.update(done - bar.n),
        )  # fmt: skip
    finally:
        bar.close()
    if jobs.not_drawn or jobs.not_benchmark:
        print(
            f"note: left out {jobs.not_drawn} jobs without a picture and "
            f"{jobs.not_benchmark} pictures of other captions",
            file=sys.stderr,
        )
    if failures:
        for r in report.results:
            if not r.passed:
                print(f"failed {r.task}: {r.job} {r.caption!r}", file=sys.stderr)
    if as_json is not None:
        from lmd.layouts import atomic_write_text

        records = [r.to_json() for r in report.results]
        atomic_write_text(as_json, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    for line in report.lines():
        print(line)

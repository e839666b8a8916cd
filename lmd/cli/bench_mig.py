"""`lmd bench mig`: draw COCO-MIG-style prompts with one or more methods and score them as
COCO-MIG does (instance success rate and mean IoU per number of instances)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from lmd.cli.app import bench_app
from lmd.cli.options import (
    Device,
    Dtype,
    Height,
    Model,
    NoSam,
    Paper,
    SamBackend,
    SamModel,
    Seed,
    Steps,
    Width,
    render_settings,
)
from lmd.cli.progress import Bars, load_renderer

RANDOM_SCORER = "random:tiny"


@bench_app.command("mig")
def mig_command(
    methods: list[str] = typer.Option(
        ["lmd"],
        "--method",
        help="A method to draw with (lmd, lmd+, sd, ...); repeat it to compare several on one "
        "table.",
    ),  # fmt: skip
    prompts: int = typer.Option(
        800, "--prompts", min=1, help="How many prompts (COCO-MIG has 800: 160 per level)."
    ),
    model: Model = None,
    steps: Steps = None,
    seed: Seed = 0,
    no_sam: NoSam = False,
    sam: SamModel = None,
    sam_backend: SamBackend = "auto",
    device: Device = None,
    dtype: Dtype = None,
    height: Height = None,
    width: Width = None,
    paper: Paper = False,
    detector: str | None = typer.Option(
        None,
        "--detector",
        help="OWL-ViT hub id or local folder (default google/owlvit-base-patch32; random:tiny "
        "with a random --model).",
    ),  # fmt: skip
    segmenter: str | None = typer.Option(
        None,
        "--segmenter",
        help="SAM that cuts out each placed instance for its colour (default "
        "facebook/sam-vit-base; random:tiny with a random --model).",
    ),  # fmt: skip
    no_segmenter: bool = typer.Option(
        False, "--no-segmenter", help="Judge each instance's colour over its whole box."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output-dir", help="Also keep the pictures: DIR/METHOD/NNNNN.png."
    ),
    as_json: Path | None = typer.Option(
        None, "--json", help="Also write every instance's score, per method, to this file."
    ),
) -> None:
    """COCO-MIG-style benchmark: instance success rate and mean IoU per level (2 to 6
    instances, each with a colour, on boxes) for each --method, as one table."""
    from tqdm import tqdm

    from lmd.bench.detector import DEFAULT_DETECTOR, load_detector
    from lmd.bench.mig import run_method, table
    from lmd.bench.mig_layouts import mig_prompts
    from lmd.layouts import atomic_save_image, atomic_write_text
    from lmd.sam import load_segmenter

    all_settings = [
        render_settings(
            model=model,
            method=m,
            steps=steps,
            no_sam=no_sam,
            sam=sam,
            sam_backend=sam_backend,
            device=device,
            dtype=dtype,
            height=height,
            width=width,
            refine=False,
            paper=paper,
        )  # fmt: skip
        for m in dict.fromkeys(methods)
    ]
    random = all(s.model_id.startswith("random:") for s in all_settings)
    detector = detector or (RANDOM_SCORER if random else DEFAULT_DETECTOR)
    segmenter = None if no_segmenter else (segmenter or (RANDOM_SCORER if random else None))
    if random:
        print("note: random weights: the pictures are noise, and so are the scores",
              file=sys.stderr)  # fmt: skip
    items = mig_prompts(prompts, seed)
    found = load_detector(detector, device=device)
    cutter = None if no_segmenter else load_segmenter(segmenter, device=device, dtype="fp32")
    reports = []
    for settings in all_settings:
        renderer = load_renderer(settings)
        folder = output / settings.method if output is not None else None

        bars = Bars()
        pictures = tqdm(total=len(items), desc=settings.method, unit="picture", file=sys.stderr)

        def keep(index, image, prompt, folder=folder, pictures=pictures):
            if folder is not None:
                atomic_save_image(image, folder / f"{index:05d}.png")
                prompt.layout().save(folder / f"{index:05d}.layout.json")
            pictures.update()

        try:
            report = run_method(
                renderer, items, found, cutter, seed=seed, method=settings.method,
                on_picture=keep, progress=bars,
            )  # fmt: skip
        finally:
            bars.close()
            pictures.close()
        reports.append(report)
        del renderer
    if as_json is not None:
        records = [r.to_json() for r in reports]
        atomic_write_text(as_json, json.dumps(records, indent=1) + "\n")
    model_name = all_settings[0].model_id if model is None else model
    colour = "the box" if no_segmenter else (segmenter or "facebook/sam-vit-base")
    print(
        f"COCO-MIG-style: {len(items)} prompts (seed {seed}), model {model_name}, "
        f"detector {detector}, colour over {colour}"
    )
    for line in table(reports):
        print(line)

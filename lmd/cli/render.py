"""`lmd render LAYOUT.json -o DIR`: draw a layout (stage 2 only, no LLM)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.options import Overwrite, render_options, seed_option
from lmd.cli.plan import layout_warnings_to_stderr
from lmd.cli.progress import Bars, load_renderer, render_summary
from lmd.settings import RenderSettings


@app.command("render")
@render_options()
def render_command(
    layout_path: Path = typer.Argument(..., metavar="LAYOUT.json", help="A layout file (JSON)."),
    output: Path = typer.Option(..., "-o", "--output-dir", help="Folder for the files."),
    seed: int = seed_option(0),
    save_intermediates: bool = typer.Option(
        False, "--save-intermediates", help="Also write each object's own image and mask."
    ),
    overwrite: Overwrite = False,
    *,
    settings: RenderSettings,
) -> None:
    """Draw LAYOUT.json: writes image.png, layout.png (the boxes over it) and layout.json.

    A folder that holds them already keeps them: the new files are numbered (image-001.png,
    layout-001.json, layout-001.png, ...) unless --overwrite.

    LAYOUT.json is a layout file (`lmd plan -o`), JSON or the planner's text format.
    """
    from lmd.api import check_out_dir, save_outputs
    from lmd.layouts import load_layout

    # 1. Everything that can be wrong before a model loads.
    with layout_warnings_to_stderr():
        layout = load_layout(layout_path)
    settings.check()
    check_out_dir(output)
    # 2. Load, draw, save.
    renderer = load_renderer(settings)
    bars = Bars()
    try:
        result = renderer.render(layout, seed=seed, progress=bars)
    finally:
        bars.close()
    saved = save_outputs(output, result.image, layout, overwrite=overwrite)
    files = list(saved.values())
    if save_intermediates and result.box_images:  # objects/, objects-001/, ... as the image
        number = saved["image"].stem.removeprefix("image")
        files += save_objects(output / f"objects{number}", result)
    print(render_summary(settings.method, result))
    for path in files:
        print(f"wrote {path}")


SLUG_CHARS = 48
"""File names of per-object outputs keep this much of the name (file systems allow 255 bytes)."""


def object_slug(name: str) -> str:
    """`name` as a short file-name part: lower-case ASCII words joined by `-`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:SLUG_CHARS].rstrip("-")
    return slug or "object"


def save_objects(folder: Path, result) -> list[Path]:
    """Each object's own image (`NN-name.png`) and its mask in place (`NN-name.mask.png`)."""
    import torch.nn.functional as F
    from PIL import Image

    from lmd.layouts.io import atomic_save_image

    width, height = result.image.size
    paths = []
    for i, (box, image, mask) in enumerate(
        zip(result.layout.boxes, result.box_images, result.masks, strict=True)
    ):
        stem = f"{i:02d}-{object_slug(box.name)}"
        big = F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest")[0, 0]
        mask_image = Image.fromarray((big.cpu().numpy() * 255).astype("uint8"), mode="L")
        paths.append(atomic_save_image(image, folder / f"{stem}.png"))
        paths.append(atomic_save_image(mask_image, folder / f"{stem}.mask.png"))
    return paths

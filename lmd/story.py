"""`generate_story(captions)`: one picture per caption, the subjects they share drawn alike.

    from lmd import generate_story
    story = generate_story(["a dog on a beach", "the dog in the snow", "the dog asleep"])
    story.pictures[1].image.save("snow.png")

One LLM plan per caption, each told the objects of the earlier plans so a recurring subject
keeps one name (`lmd.prompts.plan_story`); then one render of all the layouts together, the
recurring objects kept alike by shared attention (`Controller.render_story`). With `out_dir`:
`picture-NN.png`, `picture-NN.layout.json` and `picture-NN.layout.png` per caption,
`contact-sheet.png` (every picture with its caption) and `story.json` (what was asked and
drawn: captions, seed, model, method, subjects, anchors, the LLM's replies).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmd.layouts import Layout, atomic_save_image, draw
from lmd.layouts.io import atomic_write_text
from lmd.layouts.seeds import check_seed, is_seed

if TYPE_CHECKING:
    from PIL import Image

    from lmd.api import Renderer
    from lmd.controller import ConsistencySettings
    from lmd.controller.story import StoryResult
    from lmd.conversation.render import Progress
    from lmd.prompts import PlanResult

STORY_FILE = "story.json"
CONTACT_SHEET = "contact-sheet.png"
MAX_CAPTIONS = 64
"""A story longer than this is refused (the images are drawn as one batch)."""


@dataclass
class StoryPicture:
    """One caption of a story: its layout, the LLM's reply and the picture."""

    caption: str
    layout: Layout
    reply: str
    image: Image.Image
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class GenerateStoryResult:
    """What `generate_story` made: the pictures in caption order and how they were tied."""

    pictures: list[StoryPicture]
    subjects: list[str]  # the names that recur (drawn alike)
    anchors: list[int]  # the pictures the others attend to
    seed: int
    files: dict[str, Path] = field(default_factory=dict)  # contact sheet, story.json
    render: StoryResult | None = None


def read_captions(path: str | Path) -> list[str]:
    """A story's captions from a file: a JSON list of strings, or one caption a line (blank
    lines and lines starting with `#` skipped). Raises `ValueError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not UTF-8 text") from None
    if text.lstrip().startswith("["):
        try:
            captions = json.loads(text)
        except json.JSONDecodeError as e:
            where = f"{e.msg} (line {e.lineno})"
            raise ValueError(f"{str(path)!r} is not a JSON list: {where}") from None
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"{str(path)!r} must be a JSON list of captions (strings)")
    else:
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        captions = [line for line in lines if line.strip()]
    check_captions(captions, f"{str(path)!r}")
    return [" ".join(c.split()) for c in captions]


def check_captions(captions: Any, where: str = "`captions`") -> None:
    if not isinstance(captions, list | tuple) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{where} must be a list of captions (strings)")
    if not any(c.strip() for c in captions) or not all(c.strip() for c in captions):
        raise ValueError(f"{where} has an empty caption" if captions else f"{where} is empty")
    if len(captions) > MAX_CAPTIONS:
        raise ValueError(f"{where} has {len(captions)} captions; a story takes {MAX_CAPTIONS}")


def generate_story(
    captions: list[str],
    *,
    llm: str | None = None,
    llm_base_url: str | None = None,
    llm_cache: bool = True,
    llm_timeout: float = 120.0,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    planner: Any = None,
    renderer: Renderer | None = None,
    on_plan: Callable[[int, PlanResult], None] | None = None,
    consistency: ConsistencySettings | bool = True,
    **render_options: Any,
) -> GenerateStoryResult:
    """Plan a layout per caption with an LLM, then draw them together (module docstring).

    `render_options` are `RenderSettings` fields (model, method, steps, ...); `seed` seeds
    picture k with `seed + k`; `consistency` False draws each picture as on its own, or give
    `ConsistencySettings` (anchors, dropout, ...). Everything that can be checked without a
    model (the captions, options, `out_dir`) is checked before the LLM is asked.
    `on_plan(index, plan)` hears of each plan as it comes, before the models load.
    """
    from lmd.api import Renderer as _Renderer
    from lmd.api import RenderSettings, checked_inputs
    from lmd.prompts import plan_story

    # 1. Check inputs before spending an LLM call or a render.
    check_captions(captions)
    check_seed(seed)
    if not is_seed(seed + len(captions) - 1):  # picture k is drawn with seed + k
        raise ValueError(f"`seed` {seed} leaves no seed for the last of {len(captions)} pictures")
    planner = checked_inputs(
        "generate_story", render_options, renderer, out_dir, planner,
        model=llm, llm_base_url=llm_base_url, cache=llm_cache, llm_timeout=llm_timeout,
    )  # fmt: skip
    if consistency is not False and len(captions) > 1 and renderer is None:
        _check_consistency(RenderSettings(**render_options).model_id)
    # 2. Plan every caption, then draw them all at once.
    plans = plan_story(planner, list(captions), on_plan)
    layouts = [p.layout for p in plans]
    renderer = renderer or _Renderer(RenderSettings(**render_options))
    story = renderer.render_story(layouts, seed=seed, progress=progress, consistency=consistency)
    # 3. Save.
    pictures = [
        StoryPicture(c, p.layout, p.reply, r.image)
        for c, p, r in zip(captions, plans, story.results, strict=True)
    ]
    subjects = sorted({layouts[k].boxes[i].name for k, s in enumerate(story.subjects) for i in s})
    result = GenerateStoryResult(pictures, subjects, story.anchors, seed, render=story)
    if out_dir is not None:
        save_story(out_dir, result, renderer)
    return result


def _check_consistency(model: str) -> None:
    """Refuse consistent subjects on a model whose files say it is SD3 or FLUX, before the LLM
    is asked (the controller refuses any other such model when it draws)."""
    from lmd.controller.story import no_consistency
    from lmd.models import FAMILY_LABELS, known_family

    family = known_family(model)
    if family in ("sd3", "flux"):
        raise ValueError(no_consistency(FAMILY_LABELS[family]))


def save_story(out_dir: str | Path, result: GenerateStoryResult, renderer=None) -> None:
    """Write the story's files (module docstring) atomically; fills in `files`."""
    out = Path(out_dir)
    for k, picture in enumerate(result.pictures, start=1):
        stem = f"picture-{k:02d}"
        picture.files = {
            "image": atomic_save_image(picture.image, out / f"{stem}.png"),
            "layout": picture.layout.save(out / f"{stem}.layout.json"),
            "layout_image": atomic_save_image(
                draw(picture.layout, picture.image), out / f"{stem}.layout.png"
            ),
        }
    captions = [f"{k}. {p.caption}" for k, p in enumerate(result.pictures, start=1)]
    sheet = contact_sheet([p.image for p in result.pictures], captions)
    result.files["contact_sheet"] = atomic_save_image(sheet, out / CONTACT_SHEET)
    settings = renderer.settings if renderer is not None else None
    record = {
        "captions": [p.caption for p in result.pictures],
        "seed": result.seed,
        "model": settings.model_id if settings is not None else None,
        "method": settings.method if settings is not None else None,
        "subjects": result.subjects,
        "anchors": [a + 1 for a in result.anchors],
        "pictures": [
            {"caption": p.caption, "image": p.files["image"].name,
             "layout": p.files["layout"].name, "reply": p.reply}
            for p in result.pictures
        ],
    }  # fmt: skip
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    result.files["story"] = atomic_write_text(out / STORY_FILE, text)


def contact_sheet(images: list[Image.Image], captions: list[str], size: int = 256) -> Image.Image:
    """Every picture shrunk to at most `size` pixels with its caption under it, in rows of up
    to four."""
    from PIL import Image, ImageDraw

    from lmd.layouts.fonts import font_for

    size = min(size, max(max(image.size) for image in images))
    columns = min(4, len(images))
    rows = -(-len(images) // columns)
    pad, band = 8, 20
    sheet = Image.new("RGB", (columns * (size + pad) + pad, rows * (size + band + pad) + pad),
                      (250, 250, 250))  # fmt: skip
    pen = ImageDraw.Draw(sheet)
    for k, (image, caption) in enumerate(zip(images, captions, strict=True)):
        x = pad + (k % columns) * (size + pad)
        y = pad + (k // columns) * (size + band + pad)
        thumb = image.convert("RGB").copy()
        thumb.thumbnail((size, size))
        sheet.paste(thumb, (x + (size - thumb.width) // 2, y + (size - thumb.height) // 2))
        font = font_for(caption, band - 6)
        text = caption
        while len(text) > 1 and pen.textlength(text, font=font) > size:
            text = text[:-2] + "…"
        pen.text((x, y + size + 3), text, font=font, fill=(20, 20, 20))
    return sheet

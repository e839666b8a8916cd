"""`lmd story PROMPTS -o DIR`: one picture per caption, the subjects they share drawn alike."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.options import LlmOptions, llm_options, render_options, seed_option
from lmd.cli.progress import Bars, say_loading
from lmd.layouts import LayoutWarning
from lmd.settings import RenderSettings

STORY_PANEL = "Story"

Anchors = typer.Option(
    2, "--anchors", min=1, metavar="N", rich_help_panel=STORY_PANEL,
    help="How many pictures the others share the subject's attention with (ConsiStory's "
    "anchors; the cost grows with them).",
)  # fmt: skip
NoConsistency = typer.Option(
    False, "--no-consistency", rich_help_panel=STORY_PANEL,
    help="Draw each picture on its own, without shared attention (to compare).",
)  # fmt: skip


@app.command("story")
@llm_options
@render_options()
def story_command(
    prompts: Path = typer.Argument(
        ...,
        metavar="PROMPTS",
        help="A text file with one caption a line (# starts a comment), or a JSON list.",
    ),  # fmt: skip
    output: Path = typer.Option(
        ..., "-o", "--output-dir", metavar="DIR", help="Folder for the files."
    ),
    seed: int = seed_option(0),
    anchors: int = Anchors,
    no_consistency: bool = NoConsistency,
    *,
    llm_options: LlmOptions,
    settings: RenderSettings,
) -> None:
    """Plan each caption of PROMPTS, then draw them together with their recurring subjects
    kept alike: writes picture-NN.png, .layout.json and .layout.png per caption,
    contact-sheet.png and story.json.

    The LLM is told the objects of the earlier captions, so a subject keeps one name; every
    object whose name recurs is shared between the pictures (ConsiStory's shared attention,
    on top of --method).
    """
    import dataclasses

    from lmd.api import check_out_dir
    from lmd.controller import ConsistencySettings
    from lmd.story import generate_story, read_captions

    # 1. Everything that can be wrong before the LLM is asked.
    captions = read_captions(prompts)
    settings.check()
    check_out_dir(output)
    planner = llm_options.planner()
    consistency = False if no_consistency else ConsistencySettings(anchors=anchors)

    def planned(index: int, plan) -> None:
        for note in plan.warnings:
            print(f"warning: {note}", file=sys.stderr)
        print(f"{index + 1}/{len(captions)} {captions[index]}\n{plan.layout.to_llm_text()}",
              flush=True)  # fmt: skip
        if index == len(captions) - 1:
            say_loading(settings)

    # 2. Plan, draw, save.
    bars = Bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LayoutWarning)  # `planned` prints them, in time
            result = generate_story(
                captions, seed=seed, out_dir=output, progress=bars, planner=planner,
                on_plan=planned, consistency=consistency, **dataclasses.asdict(settings),
            )  # fmt: skip
    finally:
        bars.close()
    story = result.render
    shared = ", ".join(repr(s) for s in result.subjects) or "none (nothing recurs)"
    anchors_text = ", ".join(str(a + 1) for a in result.anchors) or "none"
    print(
        f"{len(captions)} pictures: {story.seconds:.1f} s, {story.counts.forwards} "
        f"{story.counts.denoiser} forwards; "
        f"shared: {shared}; anchors: {anchors_text}"
    )
    for picture in result.pictures:
        for path in picture.files.values():
            print(f"wrote {path}")
    for path in result.files.values():
        print(f"wrote {path}")
    sys.stdout.flush()

"""`lmd bench stage1`: score layouts on the LMD benchmark (a reply file, or a live LLM)."""

import json
import sys
from pathlib import Path

import typer

from lmd.cli.app import bench_app
from lmd.cli.options import LlmOptions, llm_options


@bench_app.command("stage1")
@llm_options
def stage1(
    responses: Path | None = typer.Option(
        None, "--responses", help="Replies to score: JSON {caption: [reply, ...]}."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="First N captions per task."),
    failures: bool = typer.Option(False, "--failures", help="List failed captions on stderr."),
    *,
    llm_options: LlmOptions,
) -> None:
    """Stage-1 accuracy on the 400 LMD benchmark captions, one line per task, then overall."""
    from lmd.bench import stage1 as bench

    live = llm_options.llm is not None or llm_options.llm_base_url is not None
    if live == (responses is not None):
        raise ValueError("give either --responses FILE or --llm MODEL (not both)")
    prompts = bench.benchmark_prompts(limit)
    if responses is not None:
        layouts = bench.parse_replies(bench.replies_for(prompts, _read_responses(responses)))
    else:
        from tqdm import tqdm

        planner = llm_options.planner()
        asked = bench.ask_llm(planner, prompts)
        layouts = tqdm(asked, total=len(prompts), desc="stage1", unit="caption", file=sys.stderr)
    report = bench.score(prompts, layouts)
    if failures:
        for prompt, layout in report.failures:
            got = layout.to_llm_text().replace("\n", " | ") if layout else "no readable layout"
            print(f"failed {prompt.task}: {prompt.caption!r} -> {got}", file=sys.stderr)
    for line in report.lines():
        print(line)


def _read_responses(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read {str(path)!r}: {e.strerror}") from None
    except ValueError as e:
        raise ValueError(f"{str(path)!r} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object {{caption: [reply, ...]}}")
    return data

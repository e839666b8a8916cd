"""`lmd batch PROMPTS -o DIR`: plan every prompt, then draw them all, resumably, on one GPU or
several (`accelerate launch -m lmd batch ...`, or `--num_processes N`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lmd.cli.app import app
from lmd.cli.options import LlmOptions, llm_options, render_options, seed_option
from lmd.cli.progress import EVERY, Bars, Count, say_loading
from lmd.settings import RenderSettings

BATCH_PANEL = "Batch"


@app.command("batch")
@llm_options
@render_options()
def batch_command(
    ctx: typer.Context,
    prompts: str = typer.Argument(
        ...,
        metavar="PROMPTS",
        help='A text file (one caption a line), a JSONL file of {"caption": ...} or '
        '{"layout": {...}} records, or lmd-benchmark (the 400 LMD benchmark captions).',
    ),  # fmt: skip
    output: Path = typer.Option(..., "-o", "--output-dir", help="Folder for the batch."),
    repeats: int = typer.Option(
        1, "--repeats", min=1, help="Pictures per prompt.", rich_help_panel=BATCH_PANEL
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        min=1,
        rich_help_panel=BATCH_PANEL,
        help="Only the first N prompts (lmd-benchmark: the first N of each task).",
    ),  # fmt: skip
    retry_failed: bool = typer.Option(
        False,
        "--retry-failed",
        rich_help_panel=BATCH_PANEL,
        help="Draw the failed jobs again (and plan failed prompts again).",
    ),  # fmt: skip
    num_processes: int | None = typer.Option(
        None,
        "--num_processes",
        "--num-processes",
        min=1,
        rich_help_panel=BATCH_PANEL,
        help="Start N processes through accelerate, one per GPU (CPU processes on a machine "
        "without CUDA or with --device cpu).",
    ),  # fmt: skip
    llm_concurrency: int = typer.Option(
        8,
        "--llm-concurrency",
        min=1,
        rich_help_panel="LLM (stage 1)",
        help="LLM requests in flight at once while planning.",
    ),  # fmt: skip
    seed: int = seed_option(0),
    *,
    llm_options: LlmOptions,
    settings: RenderSettings,
) -> None:
    """Plan and draw every prompt: DIR/layouts.jsonl, then DIR/NNNNN/rR/image.png per job.

    A job is done when its meta.json exists: rerun the same command to resume. Failed jobs
    write error.json and the run goes on; the command then exits 1. Seeds come from (--seed,
    prompt, repeat) only, so the pictures are the same on any number of processes.
    """
    from lmd.batch import Processes, read_prompts, run_batch
    from lmd.batch.processes import launch, on_cpu, single_cpu_notice

    batch = read_prompts(prompts, limit)
    settings.check()
    procs = Processes.current(settings.device)
    if num_processes is not None and num_processes > 1 and procs.count == 1:
        argv = _argv_without_num_processes(ctx)
        raise typer.Exit(launch(argv, num_processes, cpu=on_cpu(settings.device)))
    if procs.is_main and (notice := single_cpu_notice()):
        print(f"note: {notice}", file=sys.stderr)
    bars = Bars(disable=procs.count > 1 or None)
    job_bar = _JobBar(procs, settings, bars)

    try:
        summary = run_batch(
            batch, output, planner=llm_options.planner,
            settings=settings, seed=seed, repeats=repeats, retry_failed=retry_failed,
            llm_workers=llm_concurrency, processes=procs, on_plan=_plan_bar(procs),
            on_start=job_bar.start, on_job=job_bar.step, step_progress=bars,
        )  # fmt: skip
    finally:
        bars.close()
        job_bar.close()
    if summary is not None:
        print("\n".join(summary.lines()))
        if summary.failed:
            # Scripts and CI see that the folder is incomplete; the summary says how to retry.
            raise typer.Exit(1)


class _JobBar:
    """One job count per process (bars stacked by process index; lines off a terminal)."""

    def __init__(self, procs, settings, bars):
        self.procs = procs
        self.settings = settings
        self.bars = bars
        self.count = None

    def start(self, total: int) -> None:
        if total and self.procs.is_main:  # the models load next: say so, not minutes of silence
            say_loading(self.settings)
        desc = f"process {self.procs.index}" if self.procs.count > 1 else "jobs"
        self.count = Count(total, desc, "job", position=self.procs.index)

    def step(self, job, state: str) -> None:
        if self.count is not None:
            self.count.update(self.count.done + 1, f"{job.name} {state}")
        self.bars.begin()  # the next job's phases are timed from here

    def close(self) -> None:
        if self.count is not None:
            self.count.close()


def _plan_bar(procs):
    state: dict = {}

    def progress(done: int, total: int) -> None:
        if "count" not in state:
            state["count"] = Count(total, "stage 1", "prompt", every=EVERY)
        state["count"].update(done)
        if done >= total:
            state["count"].close()

    return progress if procs.is_main else None


def _argv_without_num_processes(ctx: typer.Context) -> list[str]:
    """This command's arguments as given, less --num_processes (for the launched processes)."""
    argv = [ctx.info_name or "batch"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == "num_processes" or value is None:
            continue
        if param.param_type_name == "argument":
            argv.append(str(value))
        elif param.is_flag:
            if value:
                argv.append(param.opts[0])
        elif value != param.default:
            argv += [param.opts[0], str(value)]
    return argv

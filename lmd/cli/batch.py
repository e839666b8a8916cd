"""`lmd batch PROMPTS -o DIR`: plan every prompt, then draw them all, resumably, on one GPU or
several (`accelerate launch -m lmd batch ...`, or `--num_processes N`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lmd.cli.app import app
from lmd.cli.options import LlmOptions, llm_options, render_options, seed_option
from lmd.cli.progress import EVERY, Bars, Count, say_loading
from lmd.settings import RenderSettings

BATCH_PANEL = "Batch"
Prompts = Annotated[
    str,
    typer.Argument(
        metavar="PROMPTS",
        help='A text file (one caption a line), a JSONL file of {"caption": ...} or '
        '{"layout": {...}} records, or lmd-benchmark (the 400 LMD benchmark captions).',
    ),
]
Output = Annotated[Path, typer.Option("-o", "--output-dir", help="Folder for the batch.")]
Repeats = Annotated[
    int,
    typer.Option("--repeats", min=1, help="Pictures per prompt.", rich_help_panel=BATCH_PANEL),
]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=1,
        help="Only the first N prompts (lmd-benchmark: the first N of each task).",
        rich_help_panel=BATCH_PANEL,
    ),
]
RetryFailed = Annotated[
    bool,
    typer.Option(
        "--retry-failed",
        help="Draw the failed jobs again (and plan failed prompts again).",
        rich_help_panel=BATCH_PANEL,
    ),
]
NumProcesses = Annotated[
    int | None,
    typer.Option(
        "--num_processes",
        "--num-processes",
        min=1,
        help="Start N processes through accelerate, one per GPU (CPU processes on a machine "
        "without CUDA or with --device cpu).",
        rich_help_panel=BATCH_PANEL,
    ),
]
LlmConcurrency = Annotated[
    int,
    typer.Option(
        "--llm-concurrency",
        min=1,
        help="LLM requests in flight at once while planning.",
        rich_help_panel="LLM (stage 1)",
    ),
]


@app.command("batch")
@llm_options
@render_options()
def batch_command(
    ctx: typer.Context,
    prompts: Prompts,
    output: Output,
    repeats: Repeats = 1,
    limit: Limit = None,
    retry_failed: RetryFailed = False,
    num_processes: NumProcesses = None,
    llm_concurrency: LlmConcurrency = 8,
    seed: int = seed_option(0),
    *,
    llm_options: LlmOptions,
    settings: RenderSettings,
) -> None:
    """Plan and draw every prompt: DIR/layouts.jsonl, then DIR/NNNNN/rR/image.png per job.

    A job is done when its meta.json reads and the pictures it names open: rerun the same
    command to resume (a damaged job is drawn again). Failed jobs write error.json and the run
    goes on; the command then exits 1. Seeds come from (--seed, prompt, repeat) only, so the
    pictures are the same on any number of processes. One run at a time per folder.
    """
    from lmd.batch import read_prompts

    # 1. Check inputs: the prompts and every setting, before a process starts or the LLM is asked
    batch = read_prompts(prompts, limit)
    settings.check()
    # 2. This process's place (or start N of them and wait for them)
    procs = _processes(ctx, num_processes, settings.device)
    # 3. Plan and draw, with progress bars
    summary = _draw(
        batch, output, procs, settings=settings, seed=seed, repeats=repeats,
        retry_failed=retry_failed, llm_workers=llm_concurrency, planner=llm_options.planner,
    )  # fmt: skip
    # 4. The summary, once, from the main process
    if summary is not None:
        _report(summary)


def _processes(ctx: typer.Context, num_processes: int | None, device: str | None):
    """This process's place among the batch's processes; with `--num_processes N` (N > 1) in
    a lone process, start N processes through accelerate instead and exit with their code."""
    from lmd.batch import Processes
    from lmd.batch.processes import launch, on_cpu, single_cpu_notice

    procs = Processes.current(device)
    if num_processes is not None and num_processes > 1 and procs.count == 1:
        argv = _argv_without_num_processes(ctx)
        raise typer.Exit(launch(argv, num_processes, cpu=on_cpu(device)))
    if procs.is_main and (notice := single_cpu_notice()):
        print(f"note: {notice}", file=sys.stderr)
    return procs


def _draw(batch, output: Path, procs, **options):
    """`run_batch` with a bar for stage 1, one for this process's jobs and one per phase."""
    from lmd.batch import run_batch

    bars = Bars(disable=procs.count > 1 or None)
    job_bar = _JobBar(procs, options["settings"], bars)
    try:
        return run_batch(
            batch, output, processes=procs, on_plan=_plan_bar(procs), on_start=job_bar.start,
            on_job=job_bar.step, step_progress=bars, **options,
        )  # fmt: skip
    finally:
        bars.close()
        job_bar.close()


def _report(summary) -> None:
    """Print the summary; exit 1 while any job has failed."""
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

"""`run_batch`: plan every prompt once, then draw the pending jobs in one process or several.

    from lmd.batch import read_prompts, run_batch
    summary = run_batch(read_prompts("prompts.txt"), "out/", planner=Planner(), repeats=2)

Each job draws one layout with its own seed into `DIR/NNNNN/rR/` (`image.png`, `layout.json`,
`layout.png`, then `meta.json`); a job that fails writes `error.json` and the run goes on.
Rerunning the same call resumes: done jobs are skipped, pending ones drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lmd.batch import jobs as J
from lmd.batch.inputs import BatchPrompt
from lmd.batch.lock import BatchLock
from lmd.batch.plan import LAYOUTS_FILE, Planned, plan_prompts
from lmd.batch.processes import Processes
from lmd.batch.report import BatchSummary, ProcessStats, write_index
from lmd.layouts import atomic_write_text
from lmd.settings import PICTURE_SETTINGS

SETTINGS_FILE = "batch.json"

OnJob = Callable[[J.Job, str], None]  # (job, "done" | "failed") after each job


@dataclass
class JobContext:
    """What every job of one process shares."""

    out_dir: Path
    planned: dict[int, Planned]
    base_seed: int
    settings: dict
    process: int = 0


def run_batch(
    prompts: Sequence[BatchPrompt],
    out_dir: str | Path,
    *,
    planner: Any = None,
    settings: Any = None,
    seed: int = 0,
    repeats: int = 1,
    retry_failed: bool = False,
    llm_workers: int = 8,
    processes: Processes | None = None,
    renderer: Any = None,
    on_plan: Callable[[int, int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_job: OnJob | None = None,
    step_progress: Callable[[str, int, int], None] | None = None,
) -> BatchSummary | None:
    """Plan and draw a batch; the main process returns the summary, the others None.

    `planner` is a `lmd.prompts.Planner` or a function making one (used only for prompts without
    a layout); `settings` a `RenderSettings`; `renderer` an already loaded `Renderer` (else
    one is loaded on this process's device). `on_start(n)` is told this process's job count.
    """
    from lmd.api import RenderSettings

    # 1. Check inputs
    out = Path(out_dir)
    settings = settings or RenderSettings()
    procs = processes or Processes()
    J.job_seed(seed, 0, 0)  # validates the seed
    if not prompts:
        raise ValueError("there are no prompts to draw")
    record = _settings_record(settings, seed)
    # The main process holds the folder for the whole run: a second run would draw the same jobs.
    with BatchLock(out) if procs.is_main else contextlib.nullcontext():
        # 2. Stage 1, once, in the main process
        if procs.is_main:
            _check_settings(out, record)
            plan_prompts(
                prompts, out / LAYOUTS_FILE, planner, workers=llm_workers,
                retry_failed=retry_failed, progress=on_plan,
            )  # fmt: skip
        procs.wait()
        # 3. The pending jobs (damaged ones too), listed once and shared out strided
        planned = _planned_records(out, prompts)
        jobs = J.all_jobs(planned, repeats)
        listed = _pending(out, jobs, retry_failed) if procs.is_main else None
        pending, damaged = procs.broadcast(listed)
        mine = J.split(pending, procs.index, procs.count)
        if on_start is not None:
            on_start(len(mine))
        # 4. Draw this process's share
        from lmd.models import resolve_device

        device = str(resolve_device(procs.device or settings.device))
        context = JobContext(
            out, planned, seed, {**record["settings"], "device": device}, procs.index
        )
        stats = ProcessStats(procs.index, device)
        if mine:
            if renderer is None:
                from lmd.api import Renderer

                renderer = Renderer(settings.replace(device=device))
            stats = render_jobs(mine, renderer, context, on_job=on_job, progress=step_progress)
        # 5. The index and summary, once everyone is done
        every = procs.gather(stats)
        procs.wait()
        if not procs.is_main:
            return None
        return write_index(out, jobs, planned, every, pending=len(pending), damaged=damaged)


def _pending(out: Path, jobs: list[J.Job], retry_failed: bool) -> tuple[list[J.Job], list[dict]]:
    """The jobs to draw, and what was wrong with each damaged one among them."""
    pending = J.pending_jobs(out, jobs, retry_failed)
    damaged = []
    for job in pending:
        if (out / job.name / J.META).is_file() and (why := J.damage(out / job.name)):
            damaged.append({"job": job.name, "problem": why})
    return pending, damaged


def _planned_records(out: Path, prompts: Sequence[BatchPrompt]) -> dict[int, Planned]:
    """This batch's stage-1 records (only the prompts asked for, in case the file has more)."""
    from lmd.batch.plan import read_planned

    records = read_planned(out / LAYOUTS_FILE)
    missing = [p.index for p in prompts if p.index not in records]
    if missing:
        raise ValueError(f"{out / LAYOUTS_FILE} has no record for prompt {missing[0]}")
    return {p.index: records[p.index] for p in prompts}


def render_jobs(
    jobs: Sequence[J.Job],
    renderer: Any,
    context: JobContext,
    *,
    on_job: OnJob | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ProcessStats:
    """Draw `jobs` one after another with `renderer`; failures are recorded, not raised."""
    stats = ProcessStats(context.process, str(context.settings.get("device") or "default"))
    start = time.perf_counter()
    for job in jobs:
        ok = _one_job(job, renderer, context, progress, stats)
        stats.done += ok
        stats.failed += not ok
        stats.seconds = time.perf_counter() - start
        if on_job is not None:
            on_job(job, "done" if ok else "failed")
    return stats


def _one_job(job: J.Job, renderer, context: JobContext, progress, stats: ProcessStats) -> bool:
    """Draw one job; any failure of it is its own `error.json` (or, when even that cannot be
    written, a failure the summary reports), never the run's."""
    from lmd.api import save_outputs

    folder = context.out_dir / job.name
    planned = context.planned[job.index]
    seed = J.job_seed(context.base_seed, job.index, job.repeat)
    about = {"index": job.index, "repeat": job.repeat, "caption": planned.caption, "seed": seed}

    def failed(stage: str, error: BaseException | str, **extra) -> bool:
        try:
            J.fail(folder, job, stage, error, caption=planned.caption, **extra)
        except OSError:  # the folder itself is unusable: the summary says so instead
            stats.unrecorded.append(J.failure_record(job, stage, error, **extra))
        return False

    try:
        J.start(folder)
    except OSError as e:
        where = Path(e.filename).relative_to(context.out_dir) if e.filename else job.name
        return failed("start", f"cannot use {where}: {e.strerror or e}")
    if planned.layout is None:
        return failed("plan", planned.error or "no layout")
    renderer.cache.clear()  # jobs share nothing: the same picture whichever process draws it
    try:
        result = renderer.render(planned.layout, seed=seed, progress=progress)
        files = save_outputs(folder, result.image, planned.layout)
    except Exception as e:  # out of memory, a layout the model cannot draw: the run goes on
        _free_memory()
        return failed("render", e, seed=seed)
    meta = {
        **about,
        "task": planned.task,
        "base_seed": context.base_seed,
        "object_seeds": list(result.object_seeds),
        "layout": planned.layout.model_dump(mode="json"),
        "method": context.settings.get("method"),
        "settings": context.settings,
        "versions": _versions(),
        "seconds": round(result.seconds, 3),
        "unet_forwards": result.counts.forwards,
        "unet_backwards": result.counts.backwards,
        "process": context.process,
        "files": {k: p.name for k, p in files.items()},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    J.finish(folder, meta)
    return True


def _free_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@cache  # the same for every job of the run
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("lmd", "torch", "diffusers", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _settings_record(settings, seed: int) -> dict:
    return {"seed": seed, "settings": dataclasses.asdict(settings)}


def _check_settings(out: Path, record: dict) -> None:
    """Write `batch.json` on the first run; refuse a rerun whose pictures would differ."""
    path = out / SETTINGS_FILE
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
        return
    except (ValueError, OSError) as e:
        old = e
    if not isinstance(old, dict) or not isinstance(old.get("settings", {}), dict):
        raise ValueError(
            f"{path} is damaged ({'not JSON' if isinstance(old, Exception) else 'not settings'})"
            f"; it records the settings the pictures in {out} were drawn with. To resume, "
            f"delete it and rerun with the same options (every job's meta.json lists them "
            f'under "settings" and "base_seed"); or use another output folder'
        )
    from lmd.api import RenderSettings

    # A setting newer than the folder's batch.json was drawn with its default.
    defaults = {f.name: f.default for f in dataclasses.fields(RenderSettings)}
    was = {**defaults, **old.get("settings", {})}
    # Settings that change the pictures: a folder drawn with some cannot be resumed with others.
    changed = [k for k in PICTURE_SETTINGS if was.get(k) != record["settings"].get(k)]
    if old.get("seed") != record["seed"]:
        changed.insert(0, "seed")
    if changed:
        drawn = ", ".join(f"{k}={was.get(k, old.get(k))!r}" for k in changed)
        raise ValueError(
            f"{out} was drawn with {drawn}; resume with the same options or use another folder"
        )

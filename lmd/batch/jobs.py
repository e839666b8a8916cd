"""Batch jobs: one (prompt index, repeat) each, with its own folder and seed.

A job is done exactly when its `meta.json` exists (written last, atomically, after the
pictures); a failed job has an `error.json` instead. Everything else is pending.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lmd.layouts import atomic_write_text
from lmd.layouts.errors import one_line
from lmd.layouts.seeds import job_seed as job_seed  # the seed rules live there

META = "meta.json"
ERROR = "error.json"


@dataclass(frozen=True, order=True)
class Job:
    """The `repeat`-th picture of prompt `index`."""

    index: int
    repeat: int

    @property
    def name(self) -> str:
        """The job's folder below the batch folder: `00012/r0`."""
        return f"{self.index:05d}/r{self.repeat}"


def all_jobs(indices: Iterable[int], repeats: int) -> list[Job]:
    """Every job of the prompts, prompt by prompt."""
    if repeats < 1:
        raise ValueError(f"`repeats` must be 1 or more but is {repeats}")
    return [Job(i, r) for i in sorted(indices) for r in range(repeats)]


def status(out_dir: Path, job: Job) -> str:
    """ "done", "failed" or "pending"."""
    folder = out_dir / job.name
    if (folder / META).is_file():
        return "done"
    if (folder / ERROR).is_file():
        return "failed"
    return "pending"


def pending_jobs(out_dir: Path, jobs: Sequence[Job], retry_failed: bool = False) -> list[Job]:
    """The jobs still to draw (with `retry_failed`, the failed ones too), in order."""
    wanted = {"pending", "failed"} if retry_failed else {"pending"}
    return [job for job in jobs if status(out_dir, job) in wanted]


def split(jobs: Sequence[Job], process: int, processes: int) -> list[Job]:
    """Process `process`'s share of `jobs`, strided (0, N, 2N, ...) so that every process gets
    a similar mix of prompts (the benchmark's tasks come in blocks of similar box counts)."""
    if not 0 <= process < processes:
        raise ValueError(f"process {process} is not one of {processes}")
    return list(jobs[process::processes])


def read_record(out_dir: Path, job: Job) -> dict | None:
    """The job's `meta.json` (done) or `error.json` (failed), or None when pending."""
    for name in (META, ERROR):
        try:
            return json.loads((out_dir / job.name / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except ValueError:  # cannot happen with atomic writes, but never crash a summary on it
            return {"error": f"{job.name}/{name} is not JSON"}
    return None


def start(folder: Path) -> None:
    """Make the job's folder and drop temporary files a killed run left in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


def finish(folder: Path, meta: dict) -> Path:
    """Write `meta.json` (the job is done from here on), then drop an old `error.json`."""
    path = atomic_write_text(folder / META, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    (folder / ERROR).unlink(missing_ok=True)
    return path


def fail(folder: Path, job: Job, stage: str, error: BaseException | str, **extra) -> Path:
    """Write `error.json`: which stage failed, and why."""
    record = {
        "index": job.index,
        "repeat": job.repeat,
        "stage": stage,
        "error": one_line(error, limit=None),
        "type": type(error).__name__ if isinstance(error, BaseException) else None,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
    return atomic_write_text(folder / ERROR, json.dumps(record, indent=1, ensure_ascii=False))

"""Batch jobs: one (prompt index, repeat) each, with its own folder and seed.

A job is done when its `meta.json` (written last, atomically, after the pictures) reads as
JSON and every file it names is there and opens; a `meta.json` whose files are not is
"damaged", drawn again like a pending job. A failed job has an `error.json` instead.
Everything else is pending.
"""

from __future__ import annotations

import errno
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
    """ "done", "damaged" (a `meta.json` whose files are not all right), "failed" or "pending"."""
    folder = out_dir / job.name
    if (folder / META).is_file():
        return "done" if damage(folder) is None else "damaged"
    if (folder / ERROR).is_file():
        return "failed"
    return "pending"


def damage(folder: Path) -> str | None:
    """What is wrong with a drawn job's files, or None when `meta.json` reads as JSON and
    every file it names exists and opens (pictures decode, JSON files parse)."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"its {META} is not readable JSON"
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or not files:
        return f"its {META} names no files"
    for name in files.values():
        if not isinstance(name, str) or Path(name).name != name:
            return f"its {META} names {name!r}, not a file of the job's folder"
        problem = _unreadable(folder / name)
        if problem is not None:
            return f"its {name} {problem}"
    return None


def _unreadable(path: Path) -> str | None:
    """Why the file at `path` cannot be used, or None."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        return "is missing"
    try:
        if path.suffix.lower() == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            with Image.open(path) as image:
                image.verify()  # reads every chunk and checks its CRC
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError):
        return "does not open"
    return None


def pending_jobs(out_dir: Path, jobs: Sequence[Job], retry_failed: bool = False) -> list[Job]:
    """The jobs still to draw, damaged ones included (with `retry_failed`, the failed ones
    too), in order."""
    wanted = {"pending", "damaged", "failed"} if retry_failed else {"pending", "damaged"}
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
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (ValueError, OSError):  # a damaged or unreadable file: never crash a summary
            return {"error": f"{job.name}/{name} is not JSON"}
    return None


def start(folder: Path) -> None:
    """Make the job's folder and drop temporary files a killed run left in it; raises
    `OSError` naming the path in the way (a file where a folder belongs)."""
    for place in (folder.parent, folder):
        if place.exists() and not place.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, "a file is where the job's folder belongs (move it away)", str(place)
            )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


def finish(folder: Path, meta: dict) -> Path:
    """Write `meta.json` (the job is done from here on), then drop an old `error.json`."""
    path = atomic_write_text(folder / META, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    (folder / ERROR).unlink(missing_ok=True)
    return path


def failure_record(job: Job, stage: str, error: BaseException | str, **extra) -> dict:
    """What `error.json` holds: which stage failed, and why."""
    return {
        "index": job.index,
        "repeat": job.repeat,
        "stage": stage,
        "error": one_line(error, limit=None),
        "type": type(error).__name__ if isinstance(error, BaseException) else None,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def fail(folder: Path, job: Job, stage: str, error: BaseException | str, **extra) -> Path:
    """Write `error.json`: which stage failed, and why."""
    record = failure_record(job, stage, error, **extra)
    return atomic_write_text(folder / ERROR, json.dumps(record, indent=1, ensure_ascii=False))

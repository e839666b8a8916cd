"""Reading a batch folder back: which jobs drew a picture, and of which caption.

drawn = drawn_jobs("runs/bench")        # what `lmd bench stage2 runs/bench` scores
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lmd.batch.jobs import META
from lmd.batch.report import INDEX_FILE

IMAGE = "image.png"


class DrawnJob(NamedTuple):
    """A job that drew its picture: its folder below the batch's (`00012/r0`), caption, image."""

    job: str
    caption: str
    image: Path


@dataclass
class DrawnJobs:
    """The jobs of a batch folder that drew a picture, and how many did not (yet)."""

    drawn: list[DrawnJob] = field(default_factory=list)
    not_drawn: int = 0  # failed or pending jobs


def drawn_jobs(out_dir: str | Path) -> DrawnJobs:
    """The jobs of an `lmd batch` folder: from its `index.jsonl`, else its `meta.json` files."""
    out = Path(out_dir)
    if not out.is_dir():
        raise ValueError(f"{str(out)!r} is not a folder made by lmd batch")
    index = out / INDEX_FILE
    if index.is_file():
        entries = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines()]
    else:
        metas = sorted(out.glob(f"*/r*/{META}"))
        entries = [{**json.loads(p.read_text(encoding="utf-8")), "status": "done",
                    "job": p.parent.relative_to(out).as_posix()} for p in metas]  # fmt: skip
    if not entries:
        raise ValueError(f"{str(out)!r} has no batch jobs (no {INDEX_FILE}, no */r*/{META})")
    found = DrawnJobs()
    for entry in entries:
        # index.jsonl is written at the end of a run: a resumed run that was killed leaves an
        # older one behind, so a job its meta.json says is done counts as done (done jobs are
        # never redrawn, so "done" in the index stays true).
        folder = out / entry["job"]
        done = entry.get("status") == "done" or (folder / META).is_file()
        if done and (folder / IMAGE).is_file():
            found.drawn.append(DrawnJob(entry["job"], entry.get("caption") or "", folder / IMAGE))
        else:
            found.not_drawn += 1
    return found

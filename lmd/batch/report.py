"""The end of a batch: `DIR/index.jsonl` (one line per job) and a one-screen summary."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lmd.batch import jobs as J
from lmd.layouts import atomic_write_text

INDEX_FILE = "index.jsonl"
SHOWN_FAILURES = 5


@dataclass
class ProcessStats:
    """What one process drew in this run, and how fast."""

    process: int
    device: str
    done: int = 0
    failed: int = 0
    seconds: float = 0.0  # from its first job's start to its last job's end
    unrecorded: list[dict] = field(default_factory=list)  # failures no error.json could hold

    @property
    def images_per_hour(self) -> float:
        return 3600.0 * self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BatchSummary:
    """The state of every job of the batch after this run."""

    out_dir: Path
    prompts: int
    jobs: int
    counts: Counter[str]
    processes: list[ProcessStats]
    to_draw: int  # jobs this run set out to draw
    failures: list[dict] = field(default_factory=list)
    damaged: list[dict] = field(default_factory=list)  # {"job", "problem"}: drawn again

    @property
    def done(self) -> int:
        return self.counts["done"]

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    def lines(self) -> list[str]:
        """The one-screen summary."""
        ran = sum(p.done + p.failed for p in self.processes)
        out = [
            f"{self.jobs} jobs ({self.prompts} prompts) in {self.out_dir}: "
            f"{self.done} done, {self.failed} failed, {self.counts['pending']} pending; "
            f"this run tried {ran} of {self.to_draw} to draw"
        ]
        for p in self.processes:
            out.append(
                f"  process {p.process} ({p.device}): {p.done} images, {p.failed} failed in "
                f"{p.seconds:.1f} s, {p.images_per_hour:.0f} images/hour"
            )
        if len(self.processes) > 1:
            wall = max(p.seconds for p in self.processes)
            total = 3600.0 * sum(p.done for p in self.processes) / wall if wall else 0.0
            out.append(f"  all processes: {total:.0f} images/hour")
        if self.damaged:
            shown = ", ".join(f"{d['job']} ({d['problem']})" for d in self.damaged[:3])
            more = f" and {len(self.damaged) - 3} more" if len(self.damaged) > 3 else ""
            out.append(
                f"  {len(self.damaged)} jobs counted as drawn had damaged files and were drawn "
                f"again: {shown}{more}"
            )
        for failure in self.failures[:SHOWN_FAILURES]:
            out.append(f"  failed {failure['job']}: {failure['error']}")
        if self.failed:
            more = self.failed - min(self.failed, SHOWN_FAILURES)
            also = f" ({more} more)" if more else ""
            out.append(f"  failures{also} are in {INDEX_FILE}; rerun with --retry-failed")
        return out


def write_index(
    out_dir: Path,
    jobs: Sequence[J.Job],
    planned: dict,
    processes: list,
    *,
    pending: int,
    damaged: Sequence[dict] = (),
) -> BatchSummary:
    """Write `index.jsonl` from the jobs' own files (and the failures the processes could not
    write there) and return the summary. A job whose files are damaged counts as pending."""
    counts: Counter[str] = Counter({"done": 0, "failed": 0, "pending": 0})
    unrecorded = {J.Job(f["index"], f["repeat"]).name: f for p in processes for f in p.unrecorded}
    failures = []
    lines = []
    for job in jobs:
        state = J.status(out_dir, job)
        record = J.read_record(out_dir, job) or {}
        if state in ("pending", "damaged") and job.name in unrecorded:
            state, record = "failed", unrecorded[job.name]
        state = "pending" if state == "damaged" else state
        counts[state] += 1
        entry = {
            "index": job.index,
            "repeat": job.repeat,
            "job": job.name,
            "status": state,
            "caption": planned[job.index].caption,
            "task": planned[job.index].task,
            "seed": record.get("seed"),
        }
        if state == "done":
            entry.update(image=f"{job.name}/image.png", seconds=record.get("seconds"))
        elif state == "failed":
            entry.update(stage=record.get("stage"), error=record.get("error"))
            failures.append(entry)
        lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
    atomic_write_text(out_dir / INDEX_FILE, "".join(lines))
    return BatchSummary(
        out_dir, len(planned), len(jobs), counts, sorted(processes, key=lambda p: p.process),
        pending, failures, list(damaged),
    )  # fmt: skip

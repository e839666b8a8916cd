"""Stage 1 of a batch: every prompt planned once, before any image, into `DIR/layouts.jsonl`.

Several LLM requests are in flight at once (the planner's reply cache makes reruns free), each
answer is appended to the file as it arrives, so a killed run keeps what it planned; at the end
the file is rewritten in prompt order.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lmd.batch.inputs import BatchPrompt
from lmd.layouts import Layout, LayoutWarning, atomic_write_text

LAYOUTS_FILE = "layouts.jsonl"


@dataclass
class Planned:
    """One line of `layouts.jsonl`: a prompt's layout, or why it has none."""

    index: int
    caption: str
    task: str | None = None
    layout: Layout | None = None
    error: str | None = None
    source: str = "llm"  # "llm", or "input" for layouts given in the prompts file
    model: str | None = None
    reply: str | None = None
    cached: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        record = asdict(self)
        record["layout"] = None if self.layout is None else self.layout.model_dump(mode="json")
        return json.dumps(record, ensure_ascii=False)

    @classmethod
    def from_record(cls, record: dict) -> Planned:
        layout = record.get("layout")
        fields = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        return cls(**{**fields, "layout": None if layout is None else Layout(**layout)})


def read_planned(path: str | Path) -> dict[int, Planned]:
    """The records in a `layouts.jsonl` by prompt index (the last one wins); a torn last line
    from a killed run is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    out: dict[int, Planned] = {}
    for line in text.splitlines():
        try:
            record = Planned.from_record(json.loads(line))
        except (ValueError, TypeError):
            continue
        out[record.index] = record
    return out


def plan_prompts(
    prompts: Sequence[BatchPrompt],
    path: str | Path,
    planner: Callable[[], object] | object | None,
    *,
    workers: int = 8,
    retry_failed: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, Planned]:
    """Plan what `path` does not hold yet and return every prompt's record.

    `planner` is a `lmd.prompts.Planner` or a function making one (called only if a prompt needs
    the LLM). `retry_failed` asks again for prompts that failed before. `progress(done, total)`
    follows the prompts planned in this call. A caption the LLM never answers readably is that
    prompt's failure; an unreachable LLM stops the stage (`LLMUnavailableError`).
    """
    if workers < 1:
        raise ValueError(f"`workers` must be 1 or more but is {workers}")
    path = Path(path)
    records = read_planned(path)
    for prompt in prompts:
        old = records.get(prompt.index)
        if old is not None and old.caption != prompt.caption:
            raise ValueError(
                f"{path.parent} holds a batch of other prompts (prompt {prompt.index} was "
                f"{old.caption!r}, now {prompt.caption!r}); use another output folder"
            )
    todo = [
        p
        for p in prompts
        if p.index not in records or (retry_failed and records[p.index].error is not None)
    ]
    if not todo:
        return records
    given = [p for p in todo if p.layout is not None or p.error is not None]
    asked = [p for p in todo if p.layout is None and p.error is None]
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    _end_line(path)
    with open(path, "a", encoding="utf-8") as log:

        def keep(record: Planned) -> None:
            nonlocal count
            records[record.index] = record
            log.write(record.to_json() + "\n")
            log.flush()
            os.fsync(log.fileno())
            count += 1
            if progress is not None:
                progress(count, len(todo))

        for prompt in given:
            keep(_from_input(prompt))
        if asked:
            if callable(planner) and not hasattr(planner, "complete"):
                planner = planner()
            _ask_all(planner, asked, workers, keep)
    _rewrite(path, records)
    return records


def _from_input(prompt: BatchPrompt) -> Planned:
    return Planned(
        prompt.index, prompt.caption, prompt.task, prompt.layout, prompt.error,
        source="input", warnings=list(prompt.warnings),
    )  # fmt: skip


def _ask_all(planner, prompts: Sequence[BatchPrompt], workers: int, keep) -> None:
    """Ask for every prompt with `workers` requests in flight; records kept as they come."""
    with warnings.catch_warnings():  # clipped boxes are recorded per prompt, not printed
        warnings.simplefilter("ignore", LayoutWarning)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmd-plan")
        finished_cleanly = False
        try:
            futures: dict[Future, BatchPrompt] = {pool.submit(_ask, planner, p): p for p in prompts}
            pending = set(futures)
            while pending:  # each answer is kept as it arrives: a kill loses none of them
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                errors = [f.exception() for f in finished if f.exception() is not None]
                for future in finished:
                    if future.exception() is None:
                        keep(future.result())
                if errors:
                    raise errors[0]  # an unreachable LLM ends the stage
            finished_cleanly = True
        finally:  # on an error or Ctrl-C, do not wait for the requests still in flight
            pool.shutdown(wait=finished_cleanly, cancel_futures=True)


def _ask(planner, prompt: BatchPrompt) -> Planned:
    from lmd.prompts import LLMUnavailableError, PlannerError

    try:
        result = planner.complete(planner.plan_messages(prompt.caption), sample=prompt.sample)
    except LLMUnavailableError:
        raise
    except PlannerError as e:
        return Planned(prompt.index, prompt.caption, prompt.task, error=str(e), model=planner.model)
    return Planned(
        prompt.index, prompt.caption, prompt.task, result.layout, model=planner.model,
        reply=result.reply, cached=result.cached, warnings=list(result.warnings),
    )  # fmt: skip


def _end_line(path: Path) -> None:
    """End a last line torn by a kill, so the next record starts a line of its own."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as file:
        file.seek(-1, os.SEEK_END)
        if file.read(1) != b"\n":
            file.write(b"\n")


def _rewrite(path: Path, records: dict[int, Planned]) -> None:
    text = "".join(records[i].to_json() + "\n" for i in sorted(records))
    atomic_write_text(path, text)

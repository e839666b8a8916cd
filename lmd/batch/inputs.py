"""What `lmd batch` draws: a text file, a JSONL file of caption or layout records, or the
LMD benchmark's 400 captions (`lmd-benchmark`)."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lmd.layouts import Layout, LayoutParseError, LayoutWarning, parse

BENCHMARK = "lmd-benchmark"


@dataclass(frozen=True)
class BatchPrompt:
    """One prompt of a batch; `index` names its folder, `sample` numbers repeats of a caption."""

    index: int
    caption: str
    sample: int = 0  # this is the caption's k-th occurrence: its own LLM answer
    task: str | None = None  # the benchmark task, for `lmd-benchmark`
    layout: Layout | None = None  # given in the input: drawn as it is, no LLM
    error: str | None = None  # the input's layout could not be read
    warnings: list[str] = field(default_factory=list)  # boxes clipped or dropped


def read_prompts(source: str | Path, limit: int | None = None) -> list[BatchPrompt]:
    """The prompts in `source` (a file, or `lmd-benchmark`), in order.

    `limit` keeps the first N prompts (of each task for the benchmark); indices stay those of
    the whole input, so a later run without `limit` in the same folder adds the rest.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be 1 or more but is {limit}")
    if str(source) == BENCHMARK:
        return _benchmark(limit)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not UTF-8 text") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{str(path)!r} has no prompts")
    is_jsonl = path.suffix.lower() == ".jsonl" or lines[0][1].startswith("{")
    prompts = _jsonl(path, lines) if is_jsonl else _text(lines)
    return prompts[:limit] if limit is not None else prompts


def _text(lines: list[tuple[int, str]]) -> list[BatchPrompt]:
    seen: Counter[str] = Counter()
    out = []
    for index, (_, caption) in enumerate(lines):
        out.append(BatchPrompt(index, caption, sample=seen[caption]))
        seen[caption] += 1
    return out


def _jsonl(path: Path, lines: list[tuple[int, str]]) -> list[BatchPrompt]:
    seen: Counter[str] = Counter()
    out = []
    for index, (number, line) in enumerate(lines):
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not a JSON line ({e.msg})") from None
        if not isinstance(record, dict) or not ({"caption", "layout"} & record.keys()):
            raise ValueError(f'{where}: expected {{"caption": ...}} or {{"layout": {{...}}}}')
        caption = record.get("caption")
        if caption is not None and (not isinstance(caption, str) or not caption.strip()):
            raise ValueError(f"{where}: the caption must be non-empty text")
        if "layout" in record:
            out.append(_given_layout(index, caption, record["layout"], where))
            continue
        caption = " ".join(caption.split())
        out.append(BatchPrompt(index, caption, sample=seen[caption]))
        seen[caption] += 1
    return out


def _given_layout(index: int, caption: str | None, value: object, where: str) -> BatchPrompt:
    """A layout from the input; one that cannot be read is that prompt's failure, not the run's."""
    text = value if isinstance(value, str) else json.dumps(value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayoutWarning)
        try:
            layout = parse(text)
        except LayoutParseError as e:
            name = caption or f"the layout on {where}"
            return BatchPrompt(index, name, error=f"{where}: the layout cannot be read: {e}")
    notes = [str(w.message) for w in caught if issubclass(w.category, LayoutWarning)]
    return BatchPrompt(index, caption or layout.background, layout=layout, warnings=notes)


def _benchmark(limit: int | None) -> list[BatchPrompt]:
    from lmd.bench.stage1 import benchmark_prompts

    seen: Counter[str] = Counter()
    per_task: Counter[str] = Counter()
    out = []
    for index, prompt in enumerate(benchmark_prompts()):
        sample = seen[prompt.caption]
        seen[prompt.caption] += 1
        per_task[prompt.task] += 1
        if limit is None or per_task[prompt.task] <= limit:
            out.append(BatchPrompt(index, prompt.caption, sample=sample, task=prompt.task))
    return out

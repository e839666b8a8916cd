"""What the CLI says while it works when stderr is no terminal (a pipe, a log): one line per
phase with its time, one before every LLM request and model load, and the same summary line
from `render` and `generate`."""

from __future__ import annotations

import io
import re

from lmd.cli import run
from lmd.cli.progress import Bars, Count

CAT_DOG = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
TINY = ["--model", "random:tiny", "--steps", "2"]
SUMMARY = re.compile(r"^lmd: [\d.]+ s, 2 objects drawn, \d+ UNet forwards, \d+ backwards$", re.M)


def test_bars_off_a_terminal_print_one_line_per_phase_with_its_time():
    log = io.StringIO()  # no terminal
    bars = Bars(file=log)
    for step in (1, 2, 3):
        bars("boxes", step, 3)
    for step in (1, 2):
        bars("overall", step, 2)
    bars("boxes", 1, 3)  # a second render: its own line when it ends
    bars("boxes", 3, 3)
    lines = log.getvalue().splitlines()
    assert [line.split(" in ")[0] for line in lines] == [
        "boxes: 3 steps", "overall: 2 steps", "boxes: 3 steps",
    ]  # fmt: skip
    assert all(re.fullmatch(r".* in \d+\.\d s", line) for line in lines)


def test_a_long_phase_says_where_it_is(monkeypatch):
    monkeypatch.setattr("lmd.cli.progress.EVERY", 0.0)  # every report is "a while later"
    log = io.StringIO()
    bars = Bars(file=log)
    bars("boxes", 1, 3)
    bars("boxes", 2, 3)
    assert log.getvalue().splitlines()[-1].startswith("boxes: step 2/3, ")


def test_a_count_off_a_terminal_is_a_line_per_item(capsys):
    count = Count(2, "jobs", "job")
    count.update(1, "00000/r0 done")
    count.update(2, "00001/r0 failed")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("jobs: 1/2 jobs (00000/r0 done), ")
    assert lines[1].startswith("jobs: 2/2 jobs (00001/r0 failed), ")


def test_generate_piped_says_each_step_and_the_summary_line_render_prints(
    llm_env, capsys, tmp_path
):
    layout = tmp_path / "cat.txt"
    layout.write_text(CAT_DOG)
    assert run(["render", str(layout), "-o", str(tmp_path / "r"), *TINY]) == 0
    rendered = SUMMARY.search(capsys.readouterr().out).group()
    llm_env.enqueue(CAT_DOG)
    assert run(["generate", "a cat and a dog", "-o", str(tmp_path / "g"), *TINY]) == 0
    out, err = capsys.readouterr()
    steps = [line.split(" in ")[0].split(" ...")[0] for line in err.splitlines()]
    assert steps == [
        f"asking openai/test-model at {llm_env.url}",
        "loading model random:tiny",
        "loaded",
        "boxes: 2 steps",
        "overall: 2 steps",
    ]
    generated = SUMMARY.search(out)
    assert out.index("Objects:") < generated.start() < out.index("wrote")
    shape = re.compile(r"[\d.]+ s")  # the seconds differ, the rest is the same
    assert shape.sub("T", rendered) == shape.sub("T", generated.group())


def test_bench_speed_piped_says_what_it_times(capsys):
    assert run(["bench", "speed", "--model", "random:tiny", "--steps", "2", "--boxes", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    steps = [line.split(" in ")[0] for line in err]
    assert steps == [
        "loading model random:tiny ...", "timing sd ...", "overall: 2 steps",
        "timing lmd ...", "boxes: 2 steps", "overall: 2 steps",
    ]  # fmt: skip


def test_batch_piped_says_it_loads_and_counts_its_jobs(llm_env, capsys, tmp_path):
    llm_env.default = CAT_DOG
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat and a dog\n")
    assert run(["batch", str(prompts), "-o", str(tmp_path / "out"), *TINY]) == 0
    err = capsys.readouterr().err.splitlines()
    asking = err.index(f"asking openai/test-model at {llm_env.url} ...")
    planned = next(i for i, line in enumerate(err) if line.startswith("stage 1: 1/1 prompts"))
    loading = err.index("loading model random:tiny ...")
    done = next(i for i, line in enumerate(err) if line.startswith("jobs: 1/1 jobs (00000/r0 "))
    assert asking < planned < loading < done

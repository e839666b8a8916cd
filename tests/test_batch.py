"""`lmd batch` on random:tiny with the loopback LLM: stage 1 once, jobs with their own seeds,
resuming, failures recorded, any split of the jobs giving the same pictures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lmd.api import Renderer, RenderError, RenderSettings
from lmd.batch import JobContext, Planned, job_seed, read_prompts, render_jobs, run_batch, split
from lmd.batch.jobs import Job, all_jobs
from lmd.cli import run

CAT_DOG = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog', [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
CAPTIONS = ["a cat and a dog", "a red car", "three apples", "a cat and a dog", "a boat", "a bird"]
SIZE = ["--height", "64", "--width", "64"]
TINY = ["--model", "random:tiny", "--sam", "random:tiny", *SIZE, "--device", "cpu", "--steps", "2"]
SETTINGS = RenderSettings(
    model="random:tiny", steps=2, sam_model="random:tiny", device="cpu", height=64, width=64
)


def _layout(name: str, x: int = 40, background: str = "a park") -> dict:
    box = {"name": name, "x": x, "y": 200, "w": 160, "h": 200}
    return {"boxes": [box], "background": background}


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _meta(out: Path, job: str) -> dict:
    return json.loads((out / job / "meta.json").read_text())


@pytest.fixture(scope="module")
def renderer():
    return Renderer(SETTINGS)


def test_six_prompts_plan_once_then_draw_and_a_rerun_does_nothing(llm_env, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(CAPTIONS) + "\n\n")
    out = tmp_path / "out"
    llm_env.default = CAT_DOG
    assert run(["batch", str(prompts), "-o", str(out), *TINY, "--seed", "3"]) == 0
    summary = capsys.readouterr().out
    assert "6 jobs (6 prompts)" in summary and "6 done, 0 failed, 0 pending" in summary
    assert "images/hour" in summary
    # Stage 1: one request per prompt (the repeated caption is a second, independent sample).
    assert len(llm_env.requests) == 6
    planned = [json.loads(line) for line in (out / "layouts.jsonl").read_text().splitlines()]
    assert [p["index"] for p in planned] == list(range(6))
    assert [p["caption"] for p in planned] == CAPTIONS
    assert all(p["layout"]["boxes"][0]["name"] == "a grey cat" for p in planned)
    # Each job: the files, and a meta.json whose seed is the job's own.
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [(e["index"], e["repeat"], e["status"]) for e in index] == [
        (i, 0, "done") for i in range(6)
    ]
    for i in range(6):
        meta = _meta(out, f"{i:05d}/r0")
        assert meta["seed"] == job_seed(3, i, 0) and meta["base_seed"] == 3
        assert meta["caption"] == CAPTIONS[i] and meta["settings"]["steps"] == 2
        assert meta["unet_forwards"] > 0 and "torch" in meta["versions"]
        assert Image.open(out / f"{i:05d}/r0/image.png").size == (64, 64)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/r0/*")}
    # Rerun: nothing planned again, nothing drawn again.
    assert run(["batch", str(prompts), "-o", str(out), *TINY, "--seed", "3"]) == 0
    assert "this run tried 0 of 0" in capsys.readouterr().out
    assert len(llm_env.requests) == 6
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/r0/*")} == stamps


def test_the_recorded_seed_redraws_the_same_picture(renderer, tmp_path):
    out = tmp_path / "out"
    prompts = read_prompts(_jsonl(tmp_path / "p.jsonl", [{"layout": _layout("a cat")}]))
    run_batch(prompts, out, settings=SETTINGS, seed=11, repeats=2, renderer=renderer)
    images = [(out / f"00000/r{r}/image.png").read_bytes() for r in range(2)]
    assert images[0] != images[1]  # repeats differ
    meta = _meta(out, "00000/r1")
    from lmd.layouts import Layout

    again = renderer.render(Layout(**meta["layout"]), seed=meta["seed"])
    assert Image.open(out / "00000/r1/image.png").tobytes() == again.image.tobytes()


def test_any_split_of_the_jobs_draws_the_same_pictures(renderer, tmp_path):
    records = [{"layout": _layout(n, x)} for n, x in [("a cat", 20), ("a dog", 200)]]
    prompts = read_prompts(_jsonl(tmp_path / "p.jsonl", records))
    planned = {p.index: Planned(p.index, p.caption, layout=p.layout) for p in prompts}
    jobs = all_jobs(planned, repeats=2)
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    render_jobs(jobs, renderer, JobContext(alone, planned, 5, {}))
    for process in (1, 0):  # another order, other renderers (own caches): same pictures
        mine = split(jobs, process, 2)
        assert mine == jobs[process::2]
        render_jobs(mine, Renderer(SETTINGS), JobContext(shared, planned, 5, {}, process))
    for job in jobs:
        a = (alone / job.name / "image.png").read_bytes()
        assert a == (shared / job.name / "image.png").read_bytes()
        assert _meta(shared, job.name)["process"] == jobs.index(job) % 2


def test_seeds_come_from_base_index_and_repeat_only():
    seeds = {job_seed(0, i, r) for i in range(50) for r in range(4)}
    assert len(seeds) == 200 and all(0 <= s < 2**63 for s in seeds)
    assert job_seed(1, 0, 0) != job_seed(0, 0, 0)
    assert job_seed(7, 3, 1) == job_seed(7, 3, 1)
    with pytest.raises(ValueError, match="seed"):
        job_seed(-1, 0, 0)


def test_an_interrupted_run_resumes_without_redoing_or_losing_a_job(renderer, tmp_path):
    records = [{"layout": _layout("a cat", 10 * i)} for i in range(3)]
    prompts = read_prompts(_jsonl(tmp_path / "p.jsonl", records))
    out = tmp_path / "out"

    def stop_after_three(job, state):
        if job == Job(1, 0):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(prompts, out, settings=SETTINGS, repeats=2, renderer=renderer,
                  on_job=stop_after_three)  # fmt: skip
    done = sorted(p.parent.relative_to(out).as_posix() for p in out.glob("*/*/meta.json"))
    assert done == ["00000/r0", "00000/r1", "00001/r0"]
    # A job killed mid-write: pictures and a temporary file, but no meta.json.
    (out / "00001/r1").mkdir(parents=True)
    (out / "00001/r1/image.png").write_bytes(b"half a picture")
    (out / "00001/r1/.image.png.x1y2.png").write_bytes(b"temp")
    stamps = {d: (out / d / "meta.json").stat().st_mtime_ns for d in done}
    seen = []
    summary = run_batch(prompts, out, settings=SETTINGS, repeats=2, renderer=renderer,
                        on_job=lambda job, state: seen.append(job.name))  # fmt: skip
    assert seen == ["00001/r1", "00002/r0", "00002/r1"]
    assert {d: (out / d / "meta.json").stat().st_mtime_ns for d in done} == stamps
    assert summary.done == 6 and summary.failed == 0
    assert Image.open(out / "00001/r1/image.png").size == (64, 64)
    assert not list((out / "00001/r1").glob(".*"))


class _FailsOnce(Renderer):
    """A renderer that runs out of memory on one background, the first time it sees it."""

    def __init__(self, settings, background):
        super().__init__(settings)
        self.background, self.failed = background, False

    def render(self, layout, **kw):
        if layout.background == self.background and not self.failed:
            self.failed = True
            raise RenderError("rendering failed: CUDA out of memory")
        return super().render(layout, **kw)


def test_failed_jobs_are_recorded_the_run_goes_on_and_retry_failed_redraws_them(
    make_planner, llm_server, tmp_path
):
    records = [
        {"layout": _layout("a cat")},
        {"caption": "something the LLM cannot lay out"},
        {"layout": {"boxes": [], "background": ""}, "caption": "no background"},
        {"layout": _layout("a dog", background="a crowded kitchen")},
    ]
    prompts = read_prompts(_jsonl(tmp_path / "p.jsonl", records))
    out = tmp_path / "out"
    llm_server.enqueue("no idea", "still no idea", "sorry")  # 1 answer + 2 repairs, all unreadable
    renderer = _FailsOnce(SETTINGS, "a crowded kitchen")
    planner = make_planner(max_repairs=2)
    summary = run_batch(prompts, out, planner=planner, settings=SETTINGS, renderer=renderer)
    assert (summary.done, summary.failed) == (1, 3)
    errors = {f["job"]: f for f in summary.failures}
    assert errors["00001/r0"]["stage"] == "plan"
    assert "answered 3 times" in errors["00001/r0"]["error"]
    assert errors["00002/r0"]["stage"] == "plan" and "background" in errors["00002/r0"]["error"]
    assert errors["00003/r0"]["stage"] == "render"
    assert "out of memory" in errors["00003/r0"]["error"]
    assert json.loads((out / "00003/r0/error.json").read_text())["type"] == "RenderError"
    assert not (out / "00003/r0/meta.json").exists()
    assert any("--retry-failed" in line for line in summary.lines())
    # A plain rerun leaves failures alone; --retry-failed plans and draws them again.
    again = run_batch(prompts, out, planner=planner, settings=SETTINGS, renderer=renderer)
    assert again.failed == 3 and len(llm_server.requests) == 3
    llm_server.default = CAT_DOG
    retried = run_batch(prompts, out, planner=planner, settings=SETTINGS, renderer=renderer,
                        retry_failed=True)  # fmt: skip
    assert (retried.done, retried.failed) == (3, 1)
    assert not (out / "00003/r0/error.json").exists() and (out / "00003/r0/meta.json").exists()
    assert (out / "00002/r0/error.json").exists()  # the input's layout is still unreadable


def test_lmd_batch_exits_1_when_a_job_failed_and_says_how_to_retry(llm_env, tmp_path, capsys):
    records = [{"layout": _layout("a cat")}, {"layout": {"boxes": [], "background": ""}}]
    out = tmp_path / "out"
    assert run(["batch", str(_jsonl(tmp_path / "p.jsonl", records)), "-o", str(out), *TINY]) == 1
    summary = capsys.readouterr().out
    assert "1 done, 1 failed" in summary and "--retry-failed" in summary
    assert (out / "00000/r0/image.png").exists() and llm_env.requests == []


def test_a_rerun_with_other_settings_or_prompts_is_refused(renderer, tmp_path, capsys):
    path = _jsonl(tmp_path / "p.jsonl", [{"layout": _layout("a cat")}])
    out = tmp_path / "out"
    assert run(["batch", str(path), "-o", str(out), *TINY]) == 0
    capsys.readouterr()
    assert run(["batch", str(path), "-o", str(out), *TINY[:-2], "--steps", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "steps=2" in err and len(err.splitlines()) == 1
    other = _jsonl(tmp_path / "q.jsonl", [{"caption": "a different caption"}])
    assert run(["batch", str(other), "-o", str(out), *TINY]) == 1
    assert "other prompts" in capsys.readouterr().err


def test_prompt_files_and_the_benchmark(tmp_path):
    text = tmp_path / "p.txt"
    text.write_text("a cat\n\n  a dog  \na cat\n")
    assert [(p.index, p.caption, p.sample) for p in read_prompts(text)] == [
        (0, "a cat", 0), (1, "a dog", 0), (2, "a cat", 1),
    ]  # fmt: skip
    assert len(read_prompts(text, limit=2)) == 2
    bench = read_prompts("lmd-benchmark", limit=1)
    assert [(p.index, p.task) for p in bench] == [
        (0, "negation"), (100, "numeracy"), (200, "attribution"), (300, "spatial"),
    ]  # fmt: skip
    assert len(read_prompts("lmd-benchmark")) == 400
    assert [p.sample for p in read_prompts("lmd-benchmark")[:3]] == [0, 1, 2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"caption": "a cat"}\n{"caption": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a JSON line"):
        read_prompts(bad)
    bad.write_text('{"prompt": "a cat"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected"):
        read_prompts(bad)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert run(["batch", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.txt" in err and len(err.splitlines()) == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert run(["batch", str(empty), "-o", str(tmp_path / "o")]) == 1
    assert "has no prompts" in capsys.readouterr().err


def test_an_unreachable_llm_stops_stage_one_and_keeps_what_was_planned(
    make_planner, llm_server, tmp_path
):
    from lmd.prompts import LLMUnavailableError

    records = [{"layout": _layout("a cat")}, {"caption": "a dog"}]
    prompts = read_prompts(_jsonl(tmp_path / "p.jsonl", records))
    llm_server.stop()
    with pytest.raises(LLMUnavailableError, match="could not reach"):
        run_batch(prompts, tmp_path / "out", planner=make_planner(max_retries=0),
                  settings=SETTINGS)  # fmt: skip
    kept = [json.loads(line) for line in (tmp_path / "out/layouts.jsonl").read_text().splitlines()]
    assert [(r["index"], r["source"]) for r in kept] == [(0, "input")]
    assert not list((tmp_path / "out").glob("0000*"))  # no picture before stage 1 is complete


def test_stage_one_keeps_several_requests_in_flight(make_planner, llm_server, tmp_path):
    import threading

    from lmd.batch import plan_prompts

    llm_server.default = CAT_DOG
    real = make_planner()
    together = threading.Barrier(3, timeout=10)  # breaks unless 3 requests wait at once

    class Together:
        model = real.model

        def plan_messages(self, caption):
            return real.plan_messages(caption)

        def complete(self, messages, sample=0):
            together.wait()
            return real.complete(messages, sample=sample)

    prompts = read_prompts(
        _jsonl(tmp_path / "p.jsonl", [{"caption": f"cat {i}"} for i in range(6)])
    )
    records = plan_prompts(prompts, tmp_path / "layouts.jsonl", Together(), workers=3)
    assert sorted(records) == list(range(6)) and all(r.layout for r in records.values())
    assert len(llm_server.requests) == 6

"""`lmd batch` as real processes: killed and resumed, and split across two accelerate processes
on the CPU with the same pictures as one process (slow: each starts Python and torch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmd.cli import run

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "random:tiny", "--steps", "2", "--height", "64", "--width", "64",
        "--sam", "random:tiny", "--device", "cpu"]  # fmt: skip
NAMES = ["a cat", "a dog", "a cup", "a car", "a book", "a bowl"]

pytestmark = pytest.mark.slow


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.jsonl"
    records = [
        {"layout": {"boxes": [{"name": n, "x": 30 * i, "y": 100, "w": 200, "h": 200 + 10 * i}],
                    "background": "a table"}}
        for i, n in enumerate(NAMES)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _done(out: Path) -> dict[str, int]:
    return {p.parent.relative_to(out).as_posix(): p.stat().st_mtime_ns
            for p in out.glob("*/r*/meta.json")}  # fmt: skip


def _images(out: Path) -> dict[str, bytes]:
    images = out.glob("*/r*/image.png")
    return {p.parent.relative_to(out).as_posix(): p.read_bytes() for p in images}


def test_a_killed_process_resumes_with_no_job_redone_or_lost(prompts, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "lmd", "batch", str(prompts), "-o", str(out), *TINY,
            "--repeats", "2"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while len(_done(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _done(out)
    assert 3 <= len(before) < 12, "the run finished before it could be killed"
    assert run(["batch", str(prompts), "-o", str(out), *TINY, "--repeats", "2"]) == 0
    summary = capsys.readouterr().out
    assert f"this run tried {12 - len(before)} of {12 - len(before)}" in summary
    after = _done(out)
    assert len(after) == 12 and "12 done, 0 failed, 0 pending" in summary
    assert {job: after[job] for job in before} == before  # nothing drawn twice


def test_two_accelerate_processes_draw_the_same_pictures_as_one(prompts, tmp_path, capsys):
    # The reference is one process with the same numeric set-up as the launched ones (one
    # thread each): a CPU's float sums depend on how many threads split them.
    alone = tmp_path / "alone"
    argv = [sys.executable, "-m", "lmd", "batch", str(prompts), "-o", str(alone), *TINY,
            "--repeats", "2"]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    reference = _images(alone)
    assert len(reference) == 12
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
    ]
    runs = {
        "launch": [*launch, "--multi_gpu", "--num_processes", "2", "-m", "lmd", "batch"],
        "flag": [sys.executable, "-m", "lmd", "batch", "--num_processes", "2"],
        "cpu": [*launch, "--cpu", "--num_processes", "2", "-m", "lmd", "batch"],
    }  # fmt: skip
    for name, command in runs.items():
        out = tmp_path / name
        argv = [*command, str(prompts), "-o", str(out), *TINY, "--repeats", "2"]
        done = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert _images(out) == reference, name
        processes = {json.loads(p.read_text())["process"] for p in out.glob("*/r*/meta.json")}
        if name == "cpu":  # accelerate's --cpu launcher starts one process without MPI
            assert processes == {0} and "note: accelerate launch --cpu started one" in done.stderr
        else:
            assert processes == {0, 1}
            assert "process 0 (cpu" in done.stdout and "process 1 (cpu" in done.stdout
            assert done.stdout.count("12 jobs (6 prompts)") == 1  # one summary, by the main


def test_a_kill_during_stage_one_keeps_every_plan_answered_before_it(
    llm_server, tmp_path, capsys, monkeypatch
):
    from tests.fixtures_llm import SILENT, TEST_API_KEY, TEST_MODEL
    from tests.test_batch import CAT_DOG

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"{i} cats on a sofa\n" for i in range(12)))
    out = tmp_path / "out"
    llm_server.enqueue(*[CAT_DOG] * 6)
    llm_server.default = SILENT  # the other six requests wait for an answer that never comes
    env = {**_env(), "LMD_LLM": TEST_MODEL, "LMD_LLM_BASE_URL": llm_server.url,
           "OPENAI_API_KEY": TEST_API_KEY, "LMD_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    argv = [sys.executable, "-m", "lmd", "batch", str(prompts), "-o", str(out), *TINY,
            "--llm-concurrency", "8", "--llm-timeout", "600"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    layouts = out / "layouts.jsonl"

    def planned() -> int:
        return len(layouts.read_text().splitlines()) if layouts.exists() else 0

    deadline = time.monotonic() + 120
    while planned() < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert planned() == 6, "the six answers were not on disk when the run was killed"
    assert len(llm_server.requests) == 12
    llm_server.default = CAT_DOG
    env["LMD_CACHE_DIR"] = str(tmp_path / "cache2")  # no replies to replay: only the file counts
    for name in ("LMD_LLM", "LMD_LLM_BASE_URL", "OPENAI_API_KEY", "LMD_CACHE_DIR"):
        monkeypatch.setenv(name, env[name])
    assert run(["batch", str(prompts), "-o", str(out), *TINY]) == 0
    assert "12 done, 0 failed" in capsys.readouterr().out
    assert len(llm_server.requests) == 12 + 6  # the resume asked only what was lost

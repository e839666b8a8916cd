"""`lmd batch` on a folder that was tampered with or is in use: damaged jobs are drawn again and
reported, a job whose folder cannot be made fails alone, a damaged batch.json says how to
recover, and a second run on a folder in use is refused."""

from __future__ import annotations

import json

import pytest

from lmd.api import Renderer
from lmd.batch import read_prompts, run_batch
from lmd.batch.lock import BatchInUseError, BatchLock
from lmd.cli import run
from tests.test_batch import SETTINGS, TINY, _jsonl, _layout


@pytest.fixture(scope="module")
def renderer():
    return Renderer(SETTINGS)


@pytest.fixture
def drawn(renderer, tmp_path):
    """Four one-object jobs drawn into `out`; returns (prompts, out)."""
    records = [{"layout": _layout(f"a cat {i}", 20 * i)} for i in range(4)]
    prompts = read_prompts(_jsonl(tmp_path / "p.jsonl", records))
    out = tmp_path / "out"
    summary = run_batch(prompts, out, settings=SETTINGS, renderer=renderer)
    assert summary.done == 4
    return prompts, out


def test_jobs_whose_files_are_damaged_are_drawn_again_and_reported(renderer, drawn):
    prompts, out = drawn
    (out / "00000/r0/meta.json").write_text('{"index": 0, "rep')  # torn
    (out / "00001/r0/meta.json").write_text("")
    (out / "00002/r0/image.png").unlink()
    image = out / "00003/r0/image.png"
    image.write_bytes(image.read_bytes()[:-40])  # cut short: no end chunk
    seen = []
    summary = run_batch(prompts, out, settings=SETTINGS, renderer=renderer,
                        on_job=lambda job, state: seen.append((job.name, state)))  # fmt: skip
    assert seen == [(f"0000{i}/r0", "done") for i in range(4)]
    assert (summary.done, summary.failed, summary.to_draw) == (4, 0, 4)
    problems = {d["job"]: d["problem"] for d in summary.damaged}
    assert problems == {
        "00000/r0": "its meta.json is not readable JSON",
        "00001/r0": "its meta.json is not readable JSON",
        "00002/r0": "its image.png is missing",
        "00003/r0": "its image.png does not open",
    }
    assert any("4 jobs counted as drawn had damaged files" in line for line in summary.lines())
    again = run_batch(prompts, out, settings=SETTINGS, renderer=renderer)
    assert (again.done, again.to_draw, again.damaged) == (4, 0, [])


def test_a_file_where_a_job_folder_belongs_fails_that_job_only(renderer, tmp_path, capsys):
    records = [{"layout": _layout(f"a dog {i}", 30 * i)} for i in range(3)]
    path = _jsonl(tmp_path / "p.jsonl", records)
    out = tmp_path / "out"
    (out / "00001").mkdir(parents=True)
    (out / "00001/r0").write_text("not a folder")
    assert run(["batch", str(path), "-o", str(out), *TINY]) == 1
    summary = capsys.readouterr().out
    assert "2 done, 1 failed, 0 pending" in summary
    assert (
        "failed 00001/r0: cannot use 00001/r0: a file is where the job's folder belongs "
        "(move it away)" in summary
    )
    assert (out / "00000/r0/meta.json").is_file() and (out / "00002/r0/meta.json").is_file()
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [e["status"] for e in index] == ["done", "failed", "done"]
    assert index[1]["stage"] == "start"
    assert (out / "00001/r0").read_text() == "not a folder"  # nothing of the user's is lost


@pytest.mark.parametrize("text", ["{garbage", "[1, 2]", ""])
def test_a_damaged_batch_json_says_how_to_recover(drawn, text, capsys):
    prompts, out = drawn
    (out / "batch.json").write_text(text)
    with pytest.raises(ValueError) as caught:
        run_batch(prompts, out, settings=SETTINGS)
    message = str(caught.value)
    assert message.startswith(f"{out / 'batch.json'} is damaged")
    assert "delete it and rerun with the same options" in message
    assert "meta.json lists them" in message


def test_a_second_run_on_a_folder_in_use_is_refused(drawn, tmp_path, capsys):
    prompts, out = drawn
    (out / "00003/r0/meta.json").unlink()  # one job left to draw
    with BatchLock(out):  # another run holds the folder
        with pytest.raises(BatchInUseError, match="in use by another lmd batch run"):
            run_batch(prompts, out, settings=SETTINGS)
        path = tmp_path / "p.jsonl"
        assert run(["batch", str(path), "-o", str(out), *TINY]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"error: {out} is in use by another lmd batch run; let that one finish (a rerun "
            "then draws what is left), or use another output folder\n"
        )
        assert not (out / "00003/r0/meta.json").exists()
    summary = run_batch(prompts, out, settings=SETTINGS, renderer=Renderer(SETTINGS))
    assert summary.to_draw == 1 and summary.done == 4  # free again once the other run ends


def test_a_record_after_a_torn_line_survives_a_second_kill(tmp_path):
    """A kill mid-write leaves a torn last line in layouts.jsonl; the next run's first record
    starts a line of its own, so it is read back even if that run is killed too."""
    from lmd.layouts import Layout

    from lmd.batch.inputs import BatchPrompt
    from lmd.batch.plan import plan_prompts, read_planned

    layout = Layout(**_layout("a cat", 20))
    path = tmp_path / "layouts.jsonl"
    plan_prompts([BatchPrompt(0, "a cat", layout=layout)], path, None)
    path.write_text(path.read_text() + '{"index": 1, "capt')  # killed while writing prompt 1

    class Killed(Exception):
        pass

    def killed(done, total):
        raise Killed

    with pytest.raises(Killed):  # killed again, after the first record of the rerun
        plan_prompts([BatchPrompt(1, "a dog", layout=layout)], path, None, progress=killed)
    assert sorted(read_planned(path)) == [0, 1]

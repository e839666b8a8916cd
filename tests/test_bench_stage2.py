"""`lmd bench stage2`: the paper's image-level scorer on hand-built detections, then end to end
on 4 benchmark prompts drawn by `lmd batch` and read by a tiny random OWL-ViT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lmd.batch import drawn_jobs
from lmd.bench.stage1 import PREFIX, benchmark_prompts
from lmd.bench.stage2 import (
    Detection,
    batch_jobs,
    class_aware_nms,
    judge,
    keep_confident,
    query_for,
)
from lmd.cli import run

CAT = "a photo of a cat"


def det(name: str, score: float, x0: float, y0: float, x1: float, y1: float) -> Detection:
    return Detection(name, score, (x0, y0, x1, y1))


def test_every_benchmark_caption_becomes_the_papers_query():
    prompts = benchmark_prompts()
    queries = [query_for(p.caption) for p in prompts]
    assert [q.task for q in queries] == [p.task for p in prompts]
    assert query_for("A realistic photo of a scene without backpacks").texts == (
        "a photo of a backpack",
    )
    three = query_for("A realistic photo of a scene with three cats")
    assert (three.texts, three.count) == ((CAT,), 3)
    assert query_for("A realistic photo of a scene with one dog").count == 1
    colours = query_for("A realistic photo of a scene with an orange car and a blue dog")
    assert colours.texts == ("a photo of an orange car", "a photo of a blue dog")
    spatial = query_for(f"{PREFIX} with a cat on the bottom and a dog on the top")
    assert spatial.texts == (CAT, "a photo of a dog")
    assert (spatial.axis, spatial.first_before) == (1, False)
    assert query_for("a cat and a dog") is None


def test_scores_at_the_threshold_are_kept_and_below_are_dropped():
    kept = keep_confident(
        [det(CAT, 0.15, 0, 0, 1, 1), det(CAT, float(np.float32(0.15)), 0, 0, 1, 1),
         det(CAT, 0.1499999, 0, 0, 1, 1)]
    )  # fmt: skip
    assert [d.score for d in kept] == [0.15, float(np.float32(0.15))]
    negation = query_for("A realistic photo of a scene without cats")
    assert judge(negation, [det(CAT, 0.149, 0, 0, 50, 50)])[0]  # below: not there
    assert not judge(negation, [det(CAT, 0.15, 0, 0, 50, 50)])[0]  # at: there


def test_nms_is_per_class_and_drops_an_overlap_of_exactly_the_threshold():
    # IoU 3/20 = 0.15 exactly: dropped (the paper keeps only IoU < 0.15).
    a, b = det(CAT, 0.9, 0, 0, 10, 1), det(CAT, 0.5, 7, 0, 20, 1)
    assert class_aware_nms([b, a]) == [a]
    c = det(CAT, 0.5, 7.5, 0, 20, 1)  # IoU 2.5/20.5 < 0.15: a second cat
    assert class_aware_nms([a, c]) == [a, c]
    dog = det("a photo of a dog", 0.4, 0, 0, 10, 1)  # same box, other class: kept
    assert class_aware_nms([a, b, dog]) == [a, dog]


def test_numeracy_counts_after_suppression():
    three = query_for("A realistic photo of a scene with three cats")
    boxes = [det(CAT, 0.9, 0, 0, 40, 40), det(CAT, 0.8, 2, 2, 42, 42),  # one cat, twice
             det(CAT, 0.7, 60, 0, 100, 40), det(CAT, 0.3, 0, 60, 40, 100)]  # fmt: skip
    passed, final = judge(three, boxes)
    assert passed and len(final) == 3
    assert not judge(three, boxes[:3])[0]
    assert not judge(three, [*boxes, det(CAT, 0.2, 60, 60, 100, 100)])[0]


def test_attribution_needs_each_object_found_with_its_colour():
    query = query_for("A realistic photo of a scene with a red car and a blue dog")
    car, dog = "a photo of a red car", "a photo of a blue dog"
    assert judge(query, [det(car, 0.5, 0, 0, 9, 9), det(dog, 0.2, 50, 50, 90, 90)])[0]
    assert not judge(query, [det(car, 0.5, 0, 0, 9, 9), det(car, 0.4, 50, 50, 90, 90)])[0]
    # A car found only under another colour's query is not the red car.
    blue_car = det("a photo of a blue car", 0.9, 0, 0, 9, 9)
    assert not judge(query, [blue_car, det(dog, 0.5, 50, 50, 90, 90)])[0]
    assert not judge(query, [det(car, 0.1, 0, 0, 9, 9), det(dog, 0.5, 50, 50, 90, 90)])[0]


def test_spatial_compares_the_best_detection_of_each_class():
    left = query_for("A realistic photo of a scene with a cat on the left and a dog on the right")
    right = query_for("A realistic photo of a scene with a cat on the right and a dog on the left")
    dog = "a photo of a dog"
    found = [det(CAT, 0.9, 0, 0, 20, 20), det(dog, 0.8, 60, 0, 80, 20)]
    assert judge(left, found)[0] and not judge(right, found)[0]
    # A weaker cat on the far right does not change which cat counts.
    assert judge(left, [*found, det(CAT, 0.3, 90, 50, 100, 60)])[0]
    # The best cat on the right: it counts, whatever weaker cats are on the left.
    flipped = [det(CAT, 0.95, 90, 50, 100, 60), *found]
    assert judge(right, flipped)[0] and not judge(left, flipped)[0]
    # Same centre: neither order holds (strict comparison).
    same = [det(CAT, 0.9, 10, 10, 30, 30), det(dog, 0.9, 0, 0, 40, 40)]
    assert not judge(left, same)[0] and not judge(right, same)[0]
    assert not judge(left, found[:1])[0]  # no dog at all


def test_detector_batches_images_with_different_query_counts(tmp_path):
    from lmd.bench.detector import load_detector

    detector = load_detector("random:tiny", device="cpu")
    images = [Image.new("RGB", (64, 64), (200, 0, 0)), Image.new("RGB", (48, 64), (0, 90, 0))]
    queries = [[CAT], ["a photo of a red car", "a photo of a blue dog"]]
    found = detector.detect(images, queries)
    assert found[0] and {d.name for d in found[0]} <= {CAT}
    assert found[1] and {d.name for d in found[1]} <= set(queries[1])
    assert all(0.0 < d.score <= 1.0 for d in found[0])  # nothing thresholded yet
    assert detector.detect(images[:1], queries[:1])[0] == found[0]  # batching changes nothing


@pytest.fixture(scope="module")
def tiny_owlvit_dir(tmp_path_factory):
    """A tiny random OWL-ViT written with save_pretrained (loaded like a real local folder)."""
    from lmd.bench.detector import build_random_detector

    model, processor = build_random_detector()
    path = tmp_path_factory.mktemp("models") / "tiny-owlvit"
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_batch_of_four_benchmark_prompts_scored_end_to_end(
    llm_env, tiny_owlvit_dir, tmp_path, capsys
):
    llm_env.default = (
        "Objects: [('a cat', [40, 260, 160, 160]), ('a dog', [280, 240, 180, 200])]\n"
        "Background prompt: A realistic photo of a room\nNegative prompt: "
    )
    out = tmp_path / "bench"
    tiny = ["--model", "random:tiny", "--steps", "2", "--height", "64", "--width", "64",
            "--no-sam", "--device", "cpu"]  # fmt: skip
    assert run(["batch", "lmd-benchmark", "--limit", "1", "-o", str(out), *tiny]) == 0
    assert sorted(p.parent.parent.name for p in out.glob("*/r0/image.png")) == [
        "00000", "00100", "00200", "00300",
    ]  # fmt: skip
    capsys.readouterr()
    results = tmp_path / "results.json"
    argv = ["bench", "stage2", str(out), "--detector", str(tiny_owlvit_dir), "--json", str(results)]
    assert run([*argv, "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = json.loads(results.read_text())
    assert [r["task"] for r in records] == ["negation", "numeracy", "attribution", "spatial"]
    for line, record in zip(lines, records, strict=False):
        ok = int(record["passed"])
        assert line == f"{record['task']}: {ok}/1 ({100.0 * ok:.1f}%)"
    passed = sum(r["passed"] for r in records)
    assert lines[-1] == f"overall: {100.0 * passed / 4:.1f}%" and len(lines) == 5
    names = {d["name"] for d in records[2]["detections"]}
    assert names <= {f"a photo of {n}" for n in query_for(records[2]["caption"]).names}


def test_jobs_drawn_after_the_last_index_count_as_drawn(tmp_path):
    """A resumed batch killed before its end leaves the previous run's index.jsonl."""
    caption = "A realistic photo of a scene without cats"
    (tmp_path / "index.jsonl").write_text(
        json.dumps({"job": "00000/r0", "status": "pending", "caption": caption}) + "\n"
    )
    (tmp_path / "00000/r0").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tmp_path / "00000/r0/image.png")
    assert (
        batch_jobs(drawn_jobs(tmp_path)).not_drawn == 1
    )  # a picture but no meta.json: not finished
    (tmp_path / "00000/r0/meta.json").write_text(json.dumps({"caption": caption}))
    found = batch_jobs(drawn_jobs(tmp_path))
    assert (found.not_drawn, [job for job, *_ in found.scorable]) == (0, ["00000/r0"])


def test_cli_errors(tmp_path, capsys):
    assert run(["bench", "stage2", str(tmp_path / "nothing")]) == 1
    assert "not a folder made by lmd batch" in capsys.readouterr().err
    (tmp_path / "index.jsonl").write_text(
        json.dumps({"job": "00000/r0", "status": "pending", "caption": "a cat"}) + "\n"
    )
    assert run(["bench", "stage2", str(tmp_path), "--detector", "random:tiny"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no drawn pictures" in err and len(err.splitlines()) == 1
    caption = "A realistic photo of a scene without cats"
    (tmp_path / "index.jsonl").write_text(
        json.dumps({"job": "00000/r0", "status": "done", "caption": caption}) + "\n"
    )
    (tmp_path / "00000/r0").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tmp_path / "00000/r0/image.png")
    assert run(["bench", "stage2", str(tmp_path), "--detector", str(tmp_path / "no-model")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: detector folder") and "does not exist" in err
    assert run(["bench", "stage2", str(tmp_path)]) == 1  # the hub id, offline (HF_HUB_OFFLINE)
    assert "'google/owlvit-base-patch32' is not in the local cache" in capsys.readouterr().err

"""`lmd bench mig`: the seeded COCO-MIG-style prompts, COCO-MIG's scoring on hand-made
detections and pictures, the table, and the command on a random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lmd.bench.mig import (
    InstanceScore,
    MigReport,
    colour_share,
    hsv,
    judge,
    query,
    score_picture,
    table,
)
from lmd.bench.mig_layouts import COCO_CLASSES, COLOURS, Instance, MigPrompt, mig_prompts
from lmd.bench.stage2 import Detection
from lmd.cli import run


def test_prompts_are_seeded_and_take_the_levels_in_turn():
    prompts = mig_prompts(12, seed=3)
    assert [p.level for p in prompts] == [2, 3, 4, 5, 6, 2, 3, 4, 5, 6, 2, 3]
    assert prompts == mig_prompts(12, seed=3)
    assert prompts != mig_prompts(12, seed=4)
    for p in prompts:
        for inst in p.instances:
            assert inst.colour in COLOURS and inst.label in COCO_CLASSES
            x0, y0, x1, y1 = inst.box
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            assert x1 - x0 >= 0.14 and y1 - y0 >= 0.09
    with pytest.raises(ValueError, match="`prompts` must be at least 1"):
        mig_prompts(0)


def test_a_prompt_reads_as_coco_mig_and_lays_out_its_instances():
    prompt = MigPrompt(
        0,
        (Instance("red", "car", (0.0, 0.5, 0.5, 1.0)), Instance("blue", "dog", (0.5, 0, 1, 0.5))),
    )
    assert prompt.caption == "a photo of a red car and a blue dog"
    layout = prompt.layout()
    assert [b.name for b in layout.boxes] == ["a red car", "a blue dog"]
    assert layout.boxes[0].xyxy == (0, 256, 256, 512)
    assert (layout.width, layout.height) == (512, 512)


@pytest.mark.parametrize(
    "rgb, expected",
    [
        ((255, 0, 0), (0, 255, 255)),  # OpenCV's 8-bit HSV: hue in degrees / 2
        ((0, 255, 0), (60, 255, 255)),
        ((0, 0, 255), (120, 255, 255)),
        ((255, 0, 255), (150, 255, 255)),
        ((128, 64, 0), (15, 255, 128)),
        ((255, 255, 255), (0, 0, 255)),
        ((0, 0, 0), (0, 0, 0)),
        ((100, 150, 200), (105, 127, 200)),  # OpenCV's fixed point: 127.5 -> 127
        ((10, 200, 190), (88, 242, 200)),
    ],
)
def test_hsv_is_opencvs_8_bit_scale(rgb, expected):
    assert tuple(hsv(Image.new("RGB", (2, 2), rgb))[0, 0]) == expected


def half_red_half_blue() -> Image.Image:
    image = Image.new("RGB", (8, 8), (0, 0, 255))
    ImageDraw.Draw(image).rectangle((0, 0, 3, 7), fill=(220, 20, 20))
    return image


def test_colour_share_counts_the_masks_pixels_in_range():
    colours = hsv(half_red_half_blue())
    everything = np.ones((8, 8), dtype=bool)
    assert colour_share(colours, everything, "red") == 0.5
    assert colour_share(colours, everything, "blue") == 0.5
    right = np.zeros((8, 8), dtype=bool)
    right[:, 4:] = True
    assert colour_share(colours, right, "red") == 0.0
    assert colour_share(colours, np.zeros((8, 8), dtype=bool), "red") == 0.0
    with pytest.raises(ValueError, match="no HSV range for colour 'purple'"):
        colour_share(colours, everything, "purple")


CAR = Instance("red", "car", (0.0, 0.0, 0.5, 0.5))  # (0, 0, 100, 100) in a 200 px picture
PROMPT = MigPrompt(7, (CAR,))


def det(box, score=0.9, label="car") -> Detection:
    return Detection(query(label), score, box)


def scored(detections, colour=True):
    asked = []

    def colour_ok(i):
        asked.append(i)
        return colour

    (score,) = score_picture(PROMPT, (200, 200), detections, colour_ok)
    return score, asked


def test_placed_with_its_colour_is_a_success_worth_its_iou():
    score, asked = scored([det((0, 0, 100, 80))])
    assert score.placed and score.coloured and score.success and asked == [0]
    assert score.iou == pytest.approx(0.8) and score.miou == pytest.approx(0.8)
    assert (score.prompt, score.level, score.name) == (7, 1, "a red car")


def test_a_wrong_colour_fails_and_counts_zero_iou():
    score, _ = scored([det((0, 0, 100, 80))], colour=False)
    assert score.placed and not score.coloured and not score.success
    assert score.miou == 0.0


def test_misplaced_keeps_its_iou_and_the_colour_is_not_asked():
    score, asked = scored([det((0, 0, 100, 40))])
    assert not score.placed and not score.success and asked == []
    assert score.miou == pytest.approx(0.4)


def test_only_confident_detections_of_its_own_label_count():
    score, _ = scored([det((0, 0, 100, 100), label="dog"), det((0, 0, 100, 100), score=0.14)])
    assert score.iou == 0.0 and not score.placed
    score, _ = scored([det((0, 0, 100, 100), score=0.15)])  # the threshold itself is kept
    assert score.success


def test_a_better_detection_suppresses_an_overlap_of_0_8():
    """NMS first (IoU >= 0.8 with a better-scoring box), then the best IoU (eval_mig.py)."""
    score, _ = scored([det((0, 0, 100, 110), score=0.9), det((0, 0, 100, 100), score=0.5)])
    assert score.iou == pytest.approx(100 / 110)
    score, _ = scored([det((0, 0, 100, 130), score=0.9), det((0, 0, 100, 100), score=0.5)])
    assert score.iou == pytest.approx(1.0)  # IoU 0.77 between them: both kept


class HandMadeDetector:
    """Answers every query with the boxes it is given (per query text)."""

    def __init__(self, boxes: dict[str, list[Detection]]):
        self.boxes = boxes
        self.queries = []

    def detect(self, images, queries):
        self.queries.append(queries)
        return [[d for q in qs for d in self.boxes.get(q, [])] for qs in queries]


def test_judge_reads_the_colour_inside_the_box():
    image = Image.new("RGB", (200, 200), (240, 240, 240))
    ImageDraw.Draw(image).rectangle((0, 0, 99, 99), fill=(200, 30, 30))
    prompt = MigPrompt(0, (CAR, Instance("blue", "car", (0.5, 0.5, 1.0, 1.0))))
    detector = HandMadeDetector({query("car"): [det((0, 0, 100, 100)), det((100, 100, 200, 200))]})
    red, blue = judge(image, prompt, detector)
    assert detector.queries == [[[query("car")]]]  # each label asked once, without its colour
    assert red.success and red.iou == pytest.approx(1.0)
    assert blue.placed and not blue.coloured  # its box is light grey, not blue


def report(method, rows) -> MigReport:
    return MigReport(method, [InstanceScore(0, lvl, "x", i, p, c) for lvl, i, p, c in rows])


def test_table_has_a_row_per_method_and_a_column_per_level():
    one = report("sd", [(2, 0.8, True, True), (2, 0.3, False, False), (3, 0.9, True, False),
                        (3, 0.6, True, True), (3, 0.1, False, False)])  # fmt: skip
    other = report(
        "migc", [(2, 1.0, True, True), (2, 1.0, True, True)] + [(3, 0.5, True, True)] * 3
    )
    assert one.at(2) == (2, pytest.approx(0.55), 0.5)
    assert one.at() == (5, pytest.approx(0.36), 0.4)
    lines = table([one, other])
    assert lines[0].split() == ["mean", "IoU", "instance", "success", "rate"]
    assert lines[1].split() == ["method"] + ["L2", "L3", "L4", "L5", "L6", "all"] * 2
    assert lines[2].split() == ["sd", "0.55", "0.23", "-", "-", "-", "0.36",
                                "0.50", "0.33", "-", "-", "-", "0.40"]  # fmt: skip
    assert lines[3].split()[0] == "migc" and lines[3].split()[6] == "0.70"
    assert lines[4].split() == ["instances", "2", "3", "0", "0", "0", "5"]
    assert lines[1].index("   L2", 20) == lines[0].index("instance success")  # over its cells


def test_cli_prints_the_table_for_a_random_model(capsys, tmp_path):
    out = tmp_path / "scores.json"
    args = ["bench", "mig", "--method", "sd", "--model", "random:tiny", "--prompts", "4",
            "--steps", "2", "--json", str(out), "-o", str(tmp_path / "pictures")]  # fmt: skip
    assert run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("COCO-MIG-style: 4 prompts (seed 0), model random:tiny")
    assert lines[2].split()[0] == "method"
    row = lines[3].split()
    assert row[0] == "sd" and len(row) == 13 and row[5] == row[11] == "-"  # no L6 in 4 prompts
    assert lines[4].split() == ["instances", "2", "3", "4", "5", "0", "14"]
    (record,) = json.loads(out.read_text())
    assert record["method"] == "sd" and record["instances"] == 14
    assert len(record["scores"]) == 14
    assert sorted(p.name for p in (tmp_path / "pictures" / "sd").glob("*.png")) == [
        "00000.png", "00001.png", "00002.png", "00003.png"
    ]  # fmt: skip


def test_cli_refuses_an_unknown_method_before_loading(capsys):
    assert run(["bench", "mig", "--method", "nope", "--model", "random:tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --method must be one of")


@pytest.mark.slow
def test_cli_as_the_issue_runs_it(capsys):
    """`lmd bench mig --method sd --model random:tiny --prompts 4` (50 steps)."""
    assert run(["bench", "mig", "--method", "sd", "--model", "random:tiny", "--prompts", "4"]) == 0
    assert capsys.readouterr().out.splitlines()[3].split()[0] == "sd"

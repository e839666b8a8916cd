"""`lmd bench speed` on random:tiny: both methods timed and counted, ratio last."""

import re

from lmd.bench.speed import bench_layout, bench_speed
from lmd.cli import run


def test_bench_speed_prints_counts_and_the_ratio_last(capsys):
    assert run(["bench", "speed", "--model", "random:tiny", "--steps", "4", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"ratio lmd/sd: \d+\.\d\d", lines[-1])
    assert lines[1].strip().startswith("sd:") and "UNet forwards 4 " in lines[1]
    assert lines[2].strip().startswith("lmd:") and "peak memory" in lines[2]
    assert "box by box" in lines[3]


def test_worst_case_counts_match_the_box_by_box_schedule():
    report = bench_speed("random:tiny", boxes=3, steps=5, device="cpu", worst_case=True)
    sd, lmd = report.runs
    assert (sd.forwards, sd.backwards) == (5, 0)
    # 3 guided steps (of 5) read the schedule at steps 0, 10, 20: 4 + 2 + 1 = 7 updates per
    # phase, every box in the same call.
    assert (lmd.forwards, lmd.backwards) == (2 * (5 + 7), 2 * 7)
    assert (lmd.box_by_box_forwards, lmd.box_by_box_backwards) == (3 * 12 + 12, 3 * 7 + 7)
    assert len(bench_layout(40).boxes) == 40

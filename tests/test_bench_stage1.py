"""The stage-1 benchmark: captions equal the published file's, predicates, scores, CLI."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from lmd.layouts import Box, Layout

from lmd.bench import stage1 as bench
from lmd.cli import run

# Kept in the repository (tests/data/README.md), so every clone runs these tests.
DATA = Path(__file__).resolve().parent / "data" / "lmd_benchmark_gpt-3.5-turbo.json"


def layout(*boxes, negative=""):
    return Layout(boxes=[Box(name=n, x=x, y=y, w=w, h=h) for n, x, y, w, h in boxes],
                  background="A realistic scene", negative=negative)  # fmt: skip


def by_caption(caption):
    return next(p for p in bench.benchmark_prompts() if p.caption == caption)


def test_four_tasks_of_one_hundred_in_the_benchmark_order():
    prompts = bench.benchmark_prompts()
    assert [p.task for p in prompts] == [t for t in bench.TASKS for _ in range(100)]
    assert prompts[0].caption == "A realistic photo of a scene without backpacks"
    assert prompts[100].caption == "A realistic photo of a scene with one backpack"
    assert prompts[299].caption.startswith("A realistic photo of a scene with a")
    assert [p.task for p in bench.benchmark_prompts(limit=2)] == [
        t for t in bench.TASKS for _ in range(2)
    ]


def test_generated_captions_and_repeats_equal_the_published_file():
    published = json.loads(DATA.read_text())
    counts = Counter(p.caption for p in bench.benchmark_prompts())
    assert counts == {caption: len(replies) for caption, replies in published.items()}
    assert list(counts)[:10] == list(published)[:10]


def test_negation_and_numeracy_count_whole_words():
    no_cats = by_caption("A realistic photo of a scene without cats")
    assert no_cats.check(layout(("a dog", 0, 0, 10, 10)))
    assert no_cats.check(layout(("a catalog", 0, 0, 10, 10)))  # not a cat
    assert not no_cats.check(layout(("a black cat", 0, 0, 10, 10)))
    three = by_caption("A realistic photo of a scene with three cups")
    assert three.check(layout(*[("a cup", i * 100, 0, 50, 50) for i in range(3)]))
    assert not three.check(layout(*[("a cup", i * 100, 0, 50, 50) for i in range(2)]))
    assert not three.check(layout(("three cups", 0, 0, 300, 50)))
    # a box over the whole canvas is background, not an object (as in the benchmark's scorer)
    one = by_caption("A realistic photo of a scene with one cat")
    assert not one.check(layout(("a cat", 0, 0, 512, 512)))


def test_attribution_needs_each_colour_on_its_object():
    prompt = bench.benchmark_prompts()[200]
    words = prompt.caption.removeprefix("A realistic photo of a scene with ").split()
    (colour1, cls1), (colour2, cls2) = (words[1], words[2]), (words[5], words[6])
    good = layout((f"a {colour1} {cls1}", 0, 0, 99, 99), (f"a {colour2} {cls2}", 200, 0, 99, 99))
    swapped = layout((f"a {colour2} {cls1}", 0, 0, 99, 99), (f"a {colour1} {cls2}", 200, 0, 99, 99))
    assert prompt.check(good) and not prompt.check(swapped)


def test_spatial_compares_box_centres():
    prompt = by_caption(
        "A realistic photo of a scene with a dog on the top and a bowl on the bottom"
    )
    assert prompt.check(layout(("a dog", 100, 10, 200, 100), ("a bowl", 100, 300, 200, 100)))
    assert not prompt.check(layout(("a dog", 100, 300, 200, 100), ("a bowl", 100, 10, 200, 100)))
    assert not prompt.check(layout(("a dog", 100, 10, 200, 100)))
    right = next(p for p in bench.benchmark_prompts() if " on the right and " in p.caption)
    cls1, cls2 = re.search(
        r"with an? (\w+) on the right and an? (\w+) on the left", right.caption
    ).groups()
    assert right.check(layout((f"a {cls1}", 300, 0, 100, 100), (f"a {cls2}", 10, 0, 100, 100)))
    assert not right.check(layout((f"a {cls1}", 10, 0, 100, 100), (f"a {cls2}", 300, 0, 100, 100)))


def test_unreadable_replies_fail_and_short_files_are_refused():
    prompts = bench.benchmark_prompts(limit=1)
    replies = {p.caption: ["Objects: []\nBackground prompt: A realistic scene"] for p in prompts}
    replies[prompts[1].caption] = ["not a layout"]
    report = bench.score(prompts, bench.parse_replies(bench.replies_for(prompts, replies)))
    assert report.lines() == [
        "negation: 1/1 (100.0%)", "numeracy: 0/1 (0.0%)", "attribution: 0/1 (0.0%)",
        "spatial: 0/1 (0.0%)", "overall: 25.0%",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="1 replies for .* asks it 2 times"):
        bench.replies_for(bench.benchmark_prompts(limit=2), replies)


def test_published_gpt35_replies_score_the_published_numbers(capsys):
    assert run(["bench", "stage1", "--responses", str(DATA)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "negation: 100/100 (100.0%)",
        "numeracy: 97/100 (97.0%)",
        "attribution: 100/100 (100.0%)",
        "spatial: 99/100 (99.0%)",
        "overall: 99.0%",
    ]


def test_live_llm_through_the_planner_with_cache(llm_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMD_CACHE_DIR", str(tmp_path))
    llm_server.default = "[]\nBackground prompt: A realistic scene\nNegative prompt: backpacks"
    argv = ["bench", "stage1", "--llm", "openai/test-model", "--llm-base-url", llm_server.url]
    argv += ["--limit", "2"]
    assert run(argv) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "negation: 2/2 (100.0%)"
    assert out.splitlines()[-1] == "overall: 25.0%"
    assert "8/8" in err  # the progress bar
    sent = [m[-1]["content"] for m in llm_server.messages]
    assert sent[:2] == ["Caption: A realistic photo of a scene without backpacks"] * 2
    assert len(sent) == 8  # repeats are sampled separately
    assert run(argv) == 0 and len(llm_server.requests) == 8  # then replayed from the cache


def test_cli_errors(capsys, tmp_path):
    assert run(["bench", "stage1"]) == 1
    assert "give either --responses FILE or --llm MODEL" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run(["bench", "stage1", "--responses", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"error: '{bad}' is not JSON")
    assert run(["bench", "stage1", "--responses", str(tmp_path / "missing.json")]) == 1
    assert "No such file" in capsys.readouterr().err

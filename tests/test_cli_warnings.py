"""A warning during a command is one `warning: ...` line, never Python's two-line
`file:line: UserWarning` with the source line under it."""

from __future__ import annotations

import json

from lmd.cli import run

NAME = "a shiny polished round red apple with green leaf number {}"


def test_a_render_with_many_objects_warns_in_one_line(tmp_path, capsys):
    boxes = [
        {"name": NAME.format(i), "x": (i % 4) * 120, "y": (i // 4) * 200, "w": 100, "h": 100}
        for i in range(8)
    ]  # the overall prompt holds more words than the text encoder reads
    layout = tmp_path / "apples.json"
    layout.write_text(json.dumps({"boxes": boxes, "background": "a table"}))
    argv = ["render", str(layout), "-o", str(tmp_path / "out"), "--model", "random:tiny",
            "--steps", "1", "--no-sam", "--height", "64", "--width", "64"]  # fmt: skip
    assert run(argv) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if "overall prompt is longer" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: the overall prompt is longer")
    assert len(warned[0]) <= len("warning: ") + 300 and warned[0].endswith("...")
    assert not any("UserWarning" in line or "controller.render(" in line for line in err), err

"""The README's install check runs every phase of LMD on a CPU in seconds: per-box guidance,
masks, composition and the overall phase under guidance (not `0 backwards`)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from lmd.cli import run

README = Path(__file__).resolve().parents[1] / "README.md"


def _install_check() -> tuple[str, list[str]]:
    """The layout the README writes to cat.txt and the `lmd render` command that draws it."""
    text = README.read_text(encoding="utf-8")
    layout = re.search(r"cat > cat.txt <<'TXT'\n(.*?)\nTXT\n", text, re.S).group(1)
    command = re.search(r"^lmd render cat.txt .*$", text, re.M).group()
    return layout + "\n", shlex.split(command)[1:]


def test_the_readme_check_runs_guidance_in_both_phases(tmp_path, capsys, monkeypatch):
    layout, argv = _install_check()
    monkeypatch.chdir(tmp_path)
    Path("cat.txt").write_text(layout)
    assert run(argv) == 0
    out = capsys.readouterr().out
    summary = re.search(r"^lmd: [\d.]+ s, 2 objects drawn, (\d+) UNet forwards, (\d+) backwards$",
                        out, re.M)  # fmt: skip
    assert summary is not None, out
    assert int(summary.group(2)) > 0  # guidance ran
    masks = sorted(p.name for p in Path("check/objects").glob("*.mask.png"))
    assert masks == ["00-a-grey-cat.mask.png", "01-a-brown-dog.mask.png"]


def test_its_model_guides_each_object_and_the_whole_picture(tmp_path):
    """Every guided step of the check updates the latents in the per-box phase and the overall
    phase (more than one energy per guided step: the updates ran), and the masks are SAM's."""
    from lmd.layouts import parse

    from lmd.api import RenderSettings, load_controller
    from lmd.controller.trace import TraceRecorder

    layout, argv = _install_check()
    model, steps = argv[argv.index("--model") + 1], int(argv[argv.index("--steps") + 1])
    controller = load_controller(RenderSettings(model=model, steps=steps))
    assert controller.segmenter is not None  # masks come from (random) SAM
    trace = TraceRecorder()
    controller.render(parse(layout), trace=trace)
    guided = controller.config.guidance_until
    assert guided >= 1
    for name in ("box0.energy", "box1.energy", "overall.energy"):
        per_step = trace.steps(name)
        assert all(per_step.count(step) > 1 for step in range(guided)), (name, per_step)
    assert "composed" in trace.names()

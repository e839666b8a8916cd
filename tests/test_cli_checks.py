"""Checks before work, and no silence on long work: what the CLI says, when, and in which words.

Nothing that can be known wrong before an LLM call or a model load waits for one; the layout
shows as soon as it is planned; library errors name Python arguments, the CLI shows flags.
"""

from __future__ import annotations

import io
import sys

import pytest

from lmd.api import RenderError, RenderSettings, generate
from lmd.cli import run
from lmd.cli.errors import for_the_cli
from lmd.models import ModelLoadError

CAT = (
    "Objects: [('a grey cat', [40, 260, 160, 160])]\n"
    "Background prompt: A realistic photo of a park\nNegative prompt: "
)
TINY = ["--model", "random:tiny", "--steps", "2", "--no-sam", "--device", "cpu"]


def test_generate_prints_the_layout_before_the_models_load(llm_env, monkeypatch, tmp_path):
    llm_env.enqueue(CAT)
    both = io.StringIO()  # stdout and stderr in one buffer: the order they were written in
    monkeypatch.setattr(sys, "stdout", both)  # (inside the test: pytest resets them for each)
    monkeypatch.setattr(sys, "stderr", both)
    assert run(["generate", "a cat", "-o", str(tmp_path / "out"), *TINY]) == 0
    lines = both.getvalue().splitlines()
    assert lines[:4] == [
        "Objects: [('a grey cat', [40, 260, 160, 160])]",
        "Background prompt: A realistic photo of a park",
        "Negative prompt: ",
        "loading model random:tiny ...",
    ]
    assert lines[-1] == f"wrote {tmp_path / 'out' / 'layout.png'}"


def test_the_layout_is_shown_even_when_the_render_then_fails(
    llm_env, monkeypatch, capsys, tmp_path
):
    def broken(self, *args, **kwargs):
        raise RenderError("rendering failed: out of memory")

    monkeypatch.setattr("lmd.api.Renderer.render", broken)
    llm_env.enqueue(CAT)
    assert run(["generate", "a cat", "-o", str(tmp_path / "out"), *TINY]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("Objects: [('a grey cat'")
    assert err.splitlines()[-1] == "error: rendering failed: out of memory"


def test_ctrl_c_in_a_command_exits_130(monkeypatch, capsys, tmp_path):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lmd.api.Renderer.render", interrupted)
    layout = tmp_path / "layout.json"
    layout.write_text('{"boxes": [], "background": "a park"}')
    assert run(["render", str(layout), "-o", str(tmp_path / "out"), *TINY]) == 130
    assert capsys.readouterr().err.endswith("interrupted\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["generate", "render"])
def test_o_pointing_at_a_file_fails_before_any_work(command, llm_env, capsys, tmp_path):
    target = tmp_path / "taken.png"
    target.write_bytes(b"a picture the user keeps")
    layout = tmp_path / "layout.json"
    layout.write_text('{"boxes": [], "background": "a park"}')
    first = ["generate", "a cat"] if command == "generate" else ["render", str(layout)]
    assert run([*first, "-o", str(target), *TINY]) == 1
    out, err = capsys.readouterr()
    assert err == f"error: -o {str(target)!r} is a file, not a folder\n" and out == ""
    assert llm_env.requests == [] and target.read_bytes() == b"a picture the user keeps"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"steps": 0}, ValueError, "`steps` must be a whole number from 1 to 1000 but is 0"),
        ({"steps": 5000}, ValueError, "`steps` must be a whole number from 1 to 1000 but is 5000"),
        ({"steps": 2.5}, ValueError, "`steps` must be a whole number from 1 to 1000 but is 2.5"),
        ({"height": 100}, ValueError, "`height` must be a positive multiple of 8 but is 100"),
        ({"method": "dalle"}, ValueError, "`method` must be one of lmd, lmd+, sd, attnmod"),
        ({"model": "random:huge"}, ModelLoadError, "unknown random model 'random:huge'"),
        ({"model": "nobody/none"}, ModelLoadError, "pass a local diffusers folder as `model`"),
        ({"model": "./no/such/folder"}, ModelLoadError, "does not exist"),
        ({"sam_backend": "meta"}, ValueError, "`sam_backend` must be one of"),
        ({"sam_model": "x.pth"}, ModelLoadError, "SAM checkpoint 'x.pth' does not exist"),
        ({"refiner_model": "./nowhere"}, ModelLoadError, "as `refiner_model`"),
        ({"dtype": "fp8"}, ValueError, "`dtype` must be"),
    ],
)
def test_generate_checks_its_options_before_asking_the_llm(
    options, error, message, make_planner, llm_server, tmp_path
):
    llm_server.enqueue(CAT)
    with pytest.raises(error) as info:
        generate("a cat", planner=make_planner(), out_dir=tmp_path / "out",
                 **{"model": "random:tiny", **options})  # fmt: skip
    assert message in str(info.value) and "--" not in str(info.value)  # Python names
    assert llm_server.requests == []


def test_generate_checks_out_dir_and_one_way_to_configure_before_the_llm(
    make_planner, llm_server, tmp_path
):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="`out_dir` .* is a file, not a folder"):
        generate("a cat", planner=make_planner(), out_dir=tmp_path / "file", model="random:tiny")
    with pytest.raises(TypeError, match="`renderer` or render options"):
        generate("a cat", planner=make_planner(), renderer=object(), steps=3)
    assert llm_server.requests == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sam-backend", "meta"], "error: --sam-backend must be one of auto, transformers, "),
        (["--sam", "missing.pth"], "error: SAM checkpoint 'missing.pth' does not exist"),
        (["--refiner", "./nowhere"], "pass a local diffusers folder as --refiner or a hub id"),
        (["--device", "cuda:3"], "error: --device is 'cuda:3' but CUDA is not available"),
        (["--model", "nobody/none"], "pass a local diffusers folder as --model"),
        (["--method", "lmd+", "--model", "random:nope"], "unknown random model 'random:nope'"),
    ],
)
def test_cli_errors_name_flags(flags, message, llm_env, capsys, tmp_path):
    if "--device" in flags and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert run(["generate", "a cat", "-o", str(tmp_path), "--model", "random:tiny", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "`" not in err
    assert llm_env.requests == []


def test_python_argument_names_become_flags():
    assert for_the_cli("`steps` must be >= 1") == "--steps must be >= 1"
    assert for_the_cli("try `dtype='fp16'` or `device='cpu'`") == "try --dtype fp16 or --device cpu"
    assert for_the_cli("pass a folder as `sam_model`") == "pass a folder as --sam"
    assert for_the_cli("needs `refine=True`") == "needs --refine"  # a flag without a value
    assert for_the_cli("`points` must hold one prompt per image") == (
        "`points` must hold one prompt per image"  # not an option: left as it is
    )


def test_bench_speed_on_a_cpu_warns_and_suggests_the_cpu_sized_command(monkeypatch, capsys):
    def stop(*args, **kwargs):
        raise ValueError("stopped before the benchmark")

    monkeypatch.setattr("lmd.bench.speed.bench_speed", stop)
    assert run(["bench", "speed", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "warning: 50 steps at full size take hours on a CPU; a shorter run (minutes): "
        "lmd bench speed --steps 4 --height 256 --width 256"
    )
    for quiet in (["--steps", "4"], ["--model", "random:tiny"], ["--model", "random:sdxl-tiny"]):
        assert run(["bench", "speed", "--device", "cpu", *quiet]) == 1
        assert "warning" not in capsys.readouterr().err
    assert run(["bench", "speed", "--device", "cpu", "--model", "random:sdxl"]) == 1
    assert "--model random:sdxl" in capsys.readouterr().err.splitlines()[0]  # full size warns


def test_settings_that_check_name_no_download_for_random_models():
    settings = RenderSettings(model="random:tiny").check()
    assert settings.sam_spec == "random:tiny"  # random weights: no SAM download either
    assert RenderSettings(model="random:tiny", method="sd").sam_spec is None
    assert RenderSettings(refiner_model="some/refiner").refines

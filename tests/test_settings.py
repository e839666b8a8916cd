"""Render settings are declared once (`lmd.settings`): every command's flags, the web page's
rules, batch's fixed settings and the method help come from there, and a bad value is a usage
error (exit 2) on every command before anything loads."""

from __future__ import annotations

import dataclasses

import pytest

from lmd.cli import app, run
from lmd.cli.app import click_module
from lmd.settings import MAX_STEPS, PICTURE_SETTINGS, SETTINGS, RenderSettings

RENDERING = ["render", "generate", "chat", "web", "batch"]
"""The commands that take every render setting."""


def command(path: str):
    import typer.main

    group = typer.main.get_command(app)
    ctx = click_module().Context(group)
    for name in path.split():
        group = group.get_command(ctx, name)
    return group


def flags_of(path: str) -> dict[str, object]:
    return {opt: p for p in command(path).params for opt in p.opts}


@pytest.mark.parametrize("name", RENDERING)
def test_each_render_command_takes_every_setting_as_declared(name):
    flags = flags_of(name)
    for field, declared in SETTINGS.items():
        param = flags[declared.flag]
        assert param.rich_help_panel == "Rendering (stage 2)"
        assert (param.metavar or "") == declared.metavar
        if not callable(declared.help):
            assert param.help == declared.help, field


def test_every_field_of_render_settings_is_declared():
    names = [f.name for f in dataclasses.fields(RenderSettings)]
    assert list(SETTINGS) == names
    assert len({s.flag for s in SETTINGS.values()}) == len(names)  # one flag each


def test_batch_keeps_fixed_exactly_the_settings_that_change_the_picture(tmp_path):
    from lmd.batch.runner import _check_settings, _settings_record

    assert set(PICTURE_SETTINGS) == set(SETTINGS) - {"device", "dtype"}
    other = {"model": "random:tiny", "method": "sd", "steps": 10, "sam": False, "sam_model": "x",
             "sam_backend": "transformers", "height": 64, "width": 64, "refine": True,
             "refiner_model": "x", "paper": True, "migc_checkpoint": "x"}  # fmt: skip
    _check_settings(tmp_path, _settings_record(RenderSettings(), 0))
    for name in PICTURE_SETTINGS:
        changed = RenderSettings().replace(**{name: other[name]})
        with pytest.raises(ValueError, match=f"{name}="):
            _check_settings(tmp_path, _settings_record(changed, 0))
    _check_settings(tmp_path, _settings_record(RenderSettings(device="cpu", dtype="fp32"), 0))


def test_the_method_help_lists_the_registry_with_each_summary(monkeypatch, capsys):
    from lmd.controller.methods import get_method, method_names, register, unregister
    from lmd.controller.methods.sd import PlainSD

    class Sketchy(PlainSD):
        name = "sketchy"
        summary = "sketchy (a method registered by a plugin)"

    register(Sketchy())
    try:
        monkeypatch.setenv("COLUMNS", "200")
        assert run(["render", "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        listed = ", ".join(get_method(name).summary for name in method_names())
    finally:
        unregister("sketchy")
    assert "sketchy (a method registered by a plugin)" in listed
    assert f"--method METHOD How to draw: {listed}." in text


BAD = {
    "--method lmdplus": "--method must be one of lmd, lmd+, sd",
    "--height 100": "--height must be a positive multiple of 8 but is 100",
    "--width 0": "--width must be a positive multiple of 8 but is 0",
    "--dtype fp8": "--dtype must be 'auto', 'fp16', 'bf16' or 'fp32'",
    "--device cudax": "--device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
    "--steps 1000": f"--steps must be a whole number from 1 to {MAX_STEPS} but is 1000",
    "--sam-backend meta": "--sam-backend must be one of auto, transformers, segment-anything",
    "--seed -1": "--seed must be a whole number from 0 to 2**63 - 1 but is -1",
}
COMMANDS = {
    "render": ["render", "LAYOUT", "-o", "OUT"],
    "generate": ["generate", "a cat", "-o", "OUT"],
    "chat": ["chat", "-o", "OUT"],
    "web": ["web", "-o", "OUT"],
    "batch": ["batch", "LAYOUT", "-o", "OUT"],
    "bench edit": ["bench", "edit"],
    "bench speed": ["bench", "speed"],
    "bench stage2": ["bench", "stage2", "OUT"],
}


@pytest.fixture
def nothing_loads(monkeypatch, llm_env):
    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    for target in ("lmd.models.load_pipeline", "lmd.api.load_controller",
                   "lmd.bench.speed.bench_speed", "lmd.bench.detector.load_detector"):  # fmt: skip
        monkeypatch.setattr(target, loaded)
    yield
    assert llm_env.requests == []  # nor was the LLM asked


@pytest.mark.parametrize("name", COMMANDS)
def test_every_bad_option_is_a_usage_error_before_anything_loads(
    name, nothing_loads, capsys, tmp_path
):
    layout = tmp_path / "layout.json"
    layout.write_text('{"boxes": [], "background": "a park"}')
    argv = [{"LAYOUT": str(layout), "OUT": str(tmp_path / "out")}.get(a, a) for a in COMMANDS[name]]
    options = flags_of(" ".join(argv[:2]) if argv[0] == "bench" else argv[0])
    tried = 0
    for bad, message in BAD.items():
        if bad.split()[0] not in options:
            continue
        tried += 1
        assert run([*argv, *bad.split()]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("Usage: lmd "), bad
        assert err.splitlines()[-1].startswith(f"Error: {message}")
        assert "Traceback" not in err
    assert tried == len(BAD) if argv[0] in RENDERING else tried >= 1
    assert not (tmp_path / "out").exists()


def test_each_rule_speaks_the_same_words_in_python_and_on_the_page(tmp_path):
    pytest.importorskip("gradio")
    from lmd.web.handlers import Handlers

    handlers = Handlers(tmp_path, None, RenderSettings(), None)
    for field, value in (("steps", 1000), ("method", "lmdplus")):
        problem = RenderSettings(**{field: value}).problems()[field]
        with pytest.raises(ValueError) as python:
            RenderSettings(**{field: value}).check()
        assert str(python.value) == f"`{field}` {problem}"
        page = {"steps": (None, None, None, None, "lmd", value, None, True),
                "method": (None, None, None, None, value, None, None, True)}[field]  # fmt: skip
        with pytest.raises(ValueError) as shown:
            handlers.settings(page)
        assert str(shown.value) == f"{SETTINGS[field].label} {problem}"


@pytest.mark.parametrize("name", ["tiny", "sd15", "sd2-tiny", "sdxl-tiny", "sdxl"])
def test_the_steps_limit_is_the_most_every_schedule_takes(name):
    """DDIM with `steps_offset=1` on a 1000-step schedule asks for timestep 1000 at 1000 steps
    (`IndexError` deep in the loop); at `MAX_STEPS` every timestep exists."""
    import json
    from importlib import resources

    from diffusers import DDIMScheduler

    config = json.loads(resources.files("lmd.configs").joinpath(f"{name}.json").read_text())
    scheduler = DDIMScheduler.from_config(config["scheduler"])
    scheduler.set_timesteps(MAX_STEPS)
    assert int(scheduler.timesteps.max()) < scheduler.config.num_train_timesteps
    scheduler.set_timesteps(MAX_STEPS + 1)
    assert int(scheduler.timesteps.max()) >= scheduler.config.num_train_timesteps


@pytest.mark.slow
def test_the_most_steps_the_command_line_takes_render(tmp_path):
    layout = tmp_path / "layout.json"
    layout.write_text('{"boxes": [], "background": "a park"}')
    args = ["render", str(layout), "-o", str(tmp_path / "out"), "--model", "random:tiny",
            "--method", "sd", "--height", "64", "--width", "64", "--device", "cpu"]  # fmt: skip
    assert run([*args, "--steps", str(MAX_STEPS)]) == 0
    assert (tmp_path / "out" / "image.png").is_file()

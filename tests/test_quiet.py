"""Library notices (torchvision fallbacks, dtype advice, deprecations) stay out of the
terminal of someone calling lmd from Python; real errors still come through."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from lmd.quiet import quiet_libraries

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    """The records a library's loggers let through (to whatever handlers there are), with
    the library's logger at its default level, WARNING, while recording."""

    def __init__(self, library: str, monkeypatch):
        self.messages: list[str] = []
        self.library = library
        self.logger = logging.getLogger(library)
        self.monkeypatch = monkeypatch

    def __enter__(self) -> Recorder:
        seen, library = self.messages, self.library

        def call_handlers(logger, record):
            if record.name.split(".")[0] == library:
                seen.append(record.getMessage())

        self.monkeypatch.setattr(logging.Logger, "callHandlers", call_handlers)
        self.level = self.logger.level
        self.logger.setLevel(logging.WARNING)  # the CLI's tests may have set it to ERROR
        return self

    def __exit__(self, *exc) -> None:
        self.monkeypatch.undo()
        self.logger.setLevel(self.level)


@pytest.fixture(autouse=True)
def libraries_imported():
    """The libraries configure their loggers (and their handlers' levels) on first import."""
    import diffusers  # noqa: F401
    import transformers  # noqa: F401


def test_library_logs_and_warnings_are_held_back_while_loading_only(monkeypatch):
    logger = logging.getLogger("diffusers.models.modeling_utils")
    with Recorder("diffusers", monkeypatch) as seen, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_libraries():
            logger.warning("There are modules in UNet2DConditionModel that should be kept...")
            logger.error("a real failure")
            warnings.warn_explicit("deprecated", FutureWarning, "x.py", 1, module="diffusers.x")
        logger.warning("after the load")
        assert logging.getLogger("diffusers").level == logging.WARNING  # restored
    assert seen.messages == ["a real failure", "after the load"]
    assert caught == []


def test_lmd_debug_shows_everything(monkeypatch):
    monkeypatch.setenv("LMD_DEBUG", "1")
    with Recorder("transformers", monkeypatch) as seen, quiet_libraries():
        logging.getLogger("transformers.x").warning("shown")
    assert seen.messages == ["shown"]


@pytest.mark.slow
def test_the_python_api_prints_nothing(tmp_path):
    script = (
        "from layouts import Box, Layout\n"
        "from lmd import Renderer, RenderSettings\n"
        "layout = Layout(boxes=[Box(name='a cat', x=40, y=40, w=200, h=200)], background='a')\n"
        "for method in ('lmd', 'lmd+'):\n"
        "    settings = RenderSettings(model='random:tiny', method=method, steps=2, device='cpu')\n"
        "    Renderer(settings).render(layout)\n"
        "print('drawn')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_VERBOSITY")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "drawn\n"
    assert proc.stderr == ""

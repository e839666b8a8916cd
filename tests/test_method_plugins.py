"""A method from a separate package: `tests/data/lmd-example-method`, installed with pip, is
found through the `lmd.methods` entry point group and draws with `lmd render --method`."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from tests.building import isolation_flags

PACKAGE = Path(__file__).parent / "data" / "lmd-example-method"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """The example package pip-installed into a folder on `sys.path` (its dist-info carries
    the entry point); the registry forgets it afterwards."""
    from lmd.controller import methods

    target, source = tmp_path / "site", tmp_path / "package"
    shutil.copytree(PACKAGE, source)  # pip builds in the folder it is given
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *isolation_flags(),
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    monkeypatch.setattr(methods, "_plugins_loaded", False)
    yield target
    methods.unregister("in-place")
    sys.modules.pop("lmd_example_method", None)


def test_an_installed_package_adds_a_method_that_lmd_render_draws(installed_plugin, tmp_path):
    from lmd.cli import run
    from lmd.controller.methods import get_method, method_names

    assert "in-place" in method_names()
    assert type(get_method("in-place")).__module__ == "lmd_example_method"
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({
        "boxes": [{"name": "a cat", "x": 40, "y": 220, "w": 160, "h": 200}],
        "background": "a park", "negative": "", "width": 512, "height": 512,
    }))  # fmt: skip
    out = tmp_path / "out"
    argv = ["render", str(layout), "-o", str(out), "--model", "random:tiny", "--steps", "2"]
    assert run([*argv, "--method", "in-place", "--device", "cpu"]) == 0
    assert Image.open(out / "image.png").size == (128, 128)


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch):
    """A package whose entry point does not load warns, and lmd's own methods still work."""
    from lmd.controller import methods

    info = tmp_path / "lmd_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lmd-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lmd.methods]\nbroken = lmd_broken:Missing\n")
    (tmp_path / "lmd_broken.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(methods, "_plugins_loaded", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = methods.method_names()
    assert "broken" not in names and "lmd" in names
    assert any("'broken'" in str(w.message) for w in caught)
    sys.modules.pop("lmd_broken", None)

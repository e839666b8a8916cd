"""The wheel installs one top-level name, `lmd`, and carries every module of the repository's
packages (`layouts/`, `prompts/`, `conversation/` install as `lmd.layouts`, `lmd.prompts`,
`lmd.conversation`)."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.building import isolation_flags

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"lmd": "lmd", "layouts": "lmd/layouts", "prompts": "lmd/prompts",
          "conversation": "lmd/conversation"}  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation_flags(), "-q", "-w",
         str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (path,) = out.glob("lmd-*.whl")
    return path


def test_the_wheel_holds_every_module_under_lmd(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, installed in MAPPED.items():
        for module in (ROOT / folder).rglob("*.py"):
            expected.add(f"{installed}/{module.relative_to(ROOT / folder).as_posix()}")
    assert expected - names == set()
    templates = [n for n in names if n.startswith("lmd/prompts/templates/")]
    assert any(n.endswith("instructions.txt") for n in templates)
    assert any(n.startswith("lmd/configs/") and n.endswith(".json") for n in names)
    fonts = {n.removeprefix("lmd/layouts/fonts/") for n in names if "/fonts/" in n}
    assert {p.name for p in (ROOT / "layouts" / "fonts").iterdir()} <= fonts  # and OFL.txt


def test_installing_the_wheel_adds_only_lmd(wheel, tmp_path):
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    before = set(Path(site).iterdir())
    # The host's pip installs into the fresh environment (no network: --no-deps).
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    added = {p.name for p in set(Path(site).iterdir()) - before}
    # `--target` puts the `lmd` command in bin/ (a venv install: in the venv's bin/).
    top_level = {n for n in added if not n.endswith((".dist-info", ".pth")) and n != "bin"}
    assert top_level == {"lmd"}
    assert (Path(site) / "lmd" / "layouts" / "model.py").is_file()
    assert not any((Path(site) / name).exists() for name in ("layouts", "prompts", "conversation"))

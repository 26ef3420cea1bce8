"""``dev.py``: each job installs the extras it needs, once; switching jobs does not reinstall."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dev(tmp_path, monkeypatch):
    """dev.py on a scratch clone and venv, its pip calls recorded instead of run."""
    spec = importlib.util.spec_from_file_location("dev_under_test", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "VENV", tmp_path / ".venv")
    installs: list[str] = []

    def run(cmd, **kwargs):
        if "-e" in cmd:
            installs.append(str(cmd[-1]).split("[")[1].rstrip("]"))

    class Builder:
        def __init__(self, **kwargs):
            pass

        def create(self, path):
            python = module._python()
            python.parent.mkdir(parents=True)
            python.touch()

    monkeypatch.setattr(module, "_run", run)
    monkeypatch.setattr(module.venv, "EnvBuilder", Builder)
    module.installs = installs
    return module


def test_demo_installs_only_the_viewer_and_switching_does_not_thrash(dev, tmp_path):
    dev.setup(dev.EXTRAS["demo"])
    assert dev.installs == ["viz"]  # not [all]: no jax, selenium, mkdocs for the demo
    dev.setup(dev.EXTRAS["demo"])
    assert dev.installs == ["viz"]
    dev.setup(dev.EXTRAS["test"])
    assert dev.installs == ["viz", "all"]
    for job in ("demo", "test", "demo", "setup"):  # [all] serves every job
        dev.setup(dev.EXTRAS[job])
    assert dev.installs == ["viz", "all"]
    # a changed pyproject.toml reinstalls once, keeping [all] even for the demo
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    dev.setup(dev.EXTRAS["demo"])
    dev.setup(dev.EXTRAS["test"])
    assert dev.installs == ["viz", "all", "all"]


def test_extras_exist_and_license_is_an_spdx_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    spec = importlib.util.spec_from_file_location("dev_extras", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.EXTRAS.values()) <= set(extras)
    assert module.EXTRAS["demo"] == "viz" and module.EXTRAS["test"] == "all"
    # the SPDX form (no setuptools deprecation banner), with a setuptools that knows it
    assert project["project"]["license"] == "MIT"
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in project["build-system"]["requires"])

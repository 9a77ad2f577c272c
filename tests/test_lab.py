"""`make lab`: JupyterLab on the repository root, jupytext as the .py viewer, root allowed."""
import json
import os
from pathlib import Path

from inc_utils.lab import SETTINGS, command

ROOT = Path(__file__).resolve().parents[1]


def test_lab_serves_the_repository_root_with_the_shipped_settings(monkeypatch):
    argv = command(ROOT, "--no-browser")
    assert argv[1:4] == ["-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}"]
    assert f"--LabApp.app_settings_dir={ROOT / SETTINGS}" in argv and "--no-browser" in argv
    overrides = json.loads((ROOT / SETTINGS / "overrides.json").read_text())
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert command(ROOT)[-1] == "--allow-root"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in command(ROOT)

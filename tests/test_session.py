"""A chapter's surroundings: parameters by scale, its output folder, Colab's data and Drive."""
import sys
import types
from pathlib import Path

import pytest

from inc_utils import session
from inc_utils.config import ConfigError, read_yaml
from inc_utils.runs import default_runs_dir

ROOT = Path(__file__).resolve().parents[1]


def test_a_scale_loads_the_chapters_parameter_file_also_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert session.params_dir() == ROOT / "params"
    colab = session.scale_parameters("01_intermediate_nc", "colab")
    assert colab == read_yaml(ROOT / "params/colab/01_intermediate_nc.yaml")
    assert colab["experiments"][0]["dataset"] == "fashion_mnist"
    assert session.scale_parameters("01_intermediate_nc", None) == {}
    with pytest.raises(ConfigError, match=r"scale 'huge'.*scales with this chapter: colab, cpu, paper, smoke"):
        session.scale_parameters("01_intermediate_nc", "huge")


def test_the_output_folder_is_decided_in_one_place(tmp_path, monkeypatch):
    monkeypatch.delenv("INC_BUILD_DIR", raising=False)
    monkeypatch.delenv("INC_FIGURES_DIR", raising=False)
    monkeypatch.chdir(ROOT / "notebooks")                     # JupyterLab's kernel runs here
    assert session.output_dir() == ROOT / "build" / "lab"
    assert session.figures_dir() == ROOT / "build" / "lab" / "figures"
    monkeypatch.chdir(tmp_path)                               # outside a checkout (Colab's /content)
    assert session.figures_dir() == tmp_path / "build" / "lab" / "figures"
    monkeypatch.setenv("INC_BUILD_DIR", str(tmp_path / "build" / "smoke"))   # inc reproduce
    assert session.figures_dir() == tmp_path / "build" / "smoke" / "figures"
    monkeypatch.setenv("INC_FIGURES_DIR", str(tmp_path / "elsewhere"))
    assert session.figures_dir() == tmp_path / "elsewhere"


@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    """A stub ``google.colab`` whose ``drive.mount`` makes ``MyDrive`` under ``tmp_path``."""
    mounted = []
    drive = types.SimpleNamespace(mount=lambda path: (mounted.append(path), Path(path, "MyDrive").mkdir(parents=True)))
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(session, "DRIVE_MOUNT", tmp_path / "drive")
    return mounted


def _record_loads(monkeypatch):
    loads = []
    monkeypatch.setattr("inc_utils.data.load_dataset", lambda name, split, root, download: loads.append(
        (name, split, root, download)))
    return loads


PARAMS = {"experiments": [{"dataset": "fashion_mnist", "arch": "mlp", "depth": 2, "epochs": 1, "lr_milestones": []},
                          {"dataset": "digits", "arch": "mlp", "depth": 2, "epochs": 1, "lr_milestones": []}]}


def test_in_colab_datasets_are_downloaded_and_runs_kept_on_drive(fake_colab, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("INC_RUNS_DIR", raising=False)
    loads = _record_loads(monkeypatch)
    session.prepare(PARAMS, data_dir=None, download=None, drive_folder="inc-runs")
    assert fake_colab == [str(tmp_path / "drive")]
    assert default_runs_dir() == tmp_path / "drive" / "MyDrive" / "inc-runs" / "runs"
    assert loads == [("fashion_mnist", "train", None, True), ("fashion_mnist", "test", None, True)]
    assert f"runs: {tmp_path / 'drive' / 'MyDrive' / 'inc-runs' / 'runs'}" in capsys.readouterr().out
    loads.clear()
    session.prepare(PARAMS, download=False)
    assert loads == []


def test_elsewhere_nothing_is_downloaded_unless_asked_and_drive_is_refused(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    loads = _record_loads(monkeypatch)
    session.prepare(PARAMS, data_dir="/data")
    assert loads == []
    cifar = {"dataset": "cifar10", "arch": "mlp", "depth": 2, "epochs": 1, "lr_milestones": []}
    session.prepare({"sweeps": {"s": {"base": cifar, "grid": {"lr": [0.1, 0.2]}}}}, data_dir="/data", download=True)
    assert loads == [("cifar10", "train", "/data", True), ("cifar10", "test", "/data", True)]
    with pytest.raises(ConfigError, match="drive_folder is for Google Drive in Colab"):
        session.prepare(PARAMS, drive_folder="x")


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_every_chapter_takes_a_scale_a_download_switch_and_a_drive_folder(source):
    import jupytext
    cells = jupytext.read(source).cells
    (index,) = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    parameters, setup = cells[index].source, cells[index + 1].source     # and the lines right after
    declared = {line.split("=")[0].strip() for line in parameters.splitlines() if "=" in line and line[0].isalpha()}
    assert {"scale", "download", "drive_folder", "data_dir"} <= declared
    assert f'session.scale_parameters("{source.stem}", scale)' in setup
    assert "session.prepare(" in setup and "download, drive_folder)" in setup

"""A chapter's surroundings: parameters by scale, its settings, Colab's data and Drive."""
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch

from inc_utils import session, settings
from inc_utils.config import ConfigError, read_yaml

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
#: A notebook's names after its parameters cell (``globals()``), as ``session.setup`` reads them.
NAMESPACE = {**PARAMS, "scale": None, "device": "auto", "data_dir": None, "download": None, "drive_folder": None,
             "plt": object()}


def test_in_colab_datasets_are_downloaded_and_runs_kept_on_drive(fake_colab, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("INC_RUNS_DIR", raising=False)
    loads = _record_loads(monkeypatch)
    names = session.setup("01_intermediate_nc", {**NAMESPACE, "drive_folder": "inc-runs"})
    assert fake_colab == [str(tmp_path / "drive")]
    assert settings.runs_dir() == tmp_path / "drive" / "MyDrive" / "inc-runs" / "runs"
    assert loads == [("fashion_mnist", "train", None, True), ("fashion_mnist", "test", None, True)]
    assert f"runs: {tmp_path / 'drive' / 'MyDrive' / 'inc-runs' / 'runs'}" in capsys.readouterr().out
    assert names["device"] in ("cpu", "cuda")
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
        session.setup("01_intermediate_nc", {**NAMESPACE, "drive_folder": "x"})


def test_setup_applies_the_settings_whatever_is_cached_and_returns_the_chapters_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INC_BUILD_DIR", str(tmp_path / "build" / f"{settings.staging_prefix('cpu')}x1y2"))
    monkeypatch.delenv("INC_THREADS")
    torch.set_num_threads(2)                        # torch's default here; nothing is trained or measured
    names = session.setup("05_pruning", {**NAMESPACE, "scale": "smoke"})
    assert torch.get_num_threads() == 1             # the package default, applied by the first cell
    assert names["experiment"] == session.scale_parameters("05_pruning", "smoke")["experiment"]
    assert names["out_dir"] == tmp_path / "build" / ".cpu.building-x1y2"
    assert names["figures_dir"] == names["out_dir"] / "figures"
    assert "plt" not in names and names["device"] == "cpu" if not torch.cuda.is_available() else True
    out = capsys.readouterr().out
    assert f"figures: {tmp_path / 'build' / 'cpu' / 'figures'}\n" in out     # where the build will be
    assert "device: " in out and "1 torch thread\n" in out


def test_after_setup_the_packages_own_warnings_show_and_other_userwarnings_do_not(monkeypatch, capsys):
    with warnings.catch_warnings(record=True) as caught:
        session.setup("01_intermediate_nc", NAMESPACE)
        warnings.warn("a library's chatter", UserWarning)
        warnings.warn("skipping a damaged checkpoint", settings.IncWarning)
        warnings.warn("skipping a damaged checkpoint", settings.IncWarning)
    assert [str(w.message) for w in caught] == ["skipping a damaged checkpoint"] * 2


@pytest.mark.parametrize("source", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_every_chapter_takes_a_scale_a_download_switch_and_a_drive_folder(source):
    import jupytext
    cells = jupytext.read(source).cells
    (index,) = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    parameters, setup = cells[index].source, cells[index + 1].source     # and the lines right after
    declared = {line.split("=")[0].strip() for line in parameters.splitlines() if "=" in line and line[0].isalpha()}
    assert {"scale", "download", "drive_folder", "data_dir"} <= declared
    assert f'globals().update(session.setup("{source.stem}", globals()))' in setup
    assert "warnings.filterwarnings" not in setup and "torch.set_num_threads" not in setup

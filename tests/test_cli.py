"""The command line under user mistakes and Ctrl-C: one line, exit 2 (or 130), nothing left behind."""
import errno
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from inc_utils.__main__ import main
from inc_utils.config import RunConfig
from inc_utils import settings
from inc_utils.runs import Run
from inc_utils.settings import project_root

ROOT = Path(__file__).resolve().parents[1]
TINY = RunConfig(dataset="digits", n_per_class=20, depth=2, width=16, epochs=3, lr_milestones=[])


def _config(tmp_path, config: RunConfig = TINY) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    return str(path)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("change, fragment", [
    ({"n_per_class": 1000}, "n_per_class: class 0 has"),
    ({"width": 10**9}, "needs"),
    ({"depth": 100000}, "depth must be <= 1000"),
    ({"dataset": "mnist"}, None),                     # missing dataset: a several-line message naming places
])
def test_a_failed_start_leaves_no_run_folder(tmp_path, monkeypatch, capsys, change, fragment):
    monkeypatch.setenv("INC_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY.to_dict(), **change}))
    assert main(["train", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and (fragment is None or fragment in err)
    assert "--download" in err or fragment
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("override, fragment", [
    ("lr=[1,", "not valid YAML"), ("lr=!!python/object/apply:os.system [ls]", "constructor"),
    ("lr=.nan", "lr must be a finite number"), ("lr=inf", "lr: expected float"),
])
def test_bad_overrides_are_one_line(tmp_path, capsys, override, fragment):
    assert main(["train", _config(tmp_path), "--set", override, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert fragment in _one_error_line(capsys)
    assert not (tmp_path / "runs").exists()


def test_damaged_data_file_is_one_line(tmp_path, capsys):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(b"\x80\x02}q\x00(")          # a pickle cut short
    path = _config(tmp_path, TINY.replace(dataset="cifar10", n_per_class=None))
    assert main(["train", path, "--data-dir", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "data_batch_1: not a CIFAR-10 batch" in _one_error_line(capsys)


def test_read_only_runs_dir_is_one_line(tmp_path, monkeypatch, capsys):
    def read_only(self):
        raise OSError(errno.EROFS, "Read-only file system", str(self.path / ".lock"))

    monkeypatch.setattr(Run, "lock", read_only)
    assert main(["train", _config(tmp_path), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert _one_error_line(capsys) == f"error: cannot write {tmp_path / 'runs'}/{TINY.name}/.lock: Read-only file system\n"


def test_a_full_disk_at_the_start_is_one_line_and_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    def disk_full(self, config, device):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "config.yaml"))

    monkeypatch.setattr(Run, "create", disk_full)
    assert main(["train", _config(tmp_path), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert _one_error_line(capsys) == (f"error: cannot write {tmp_path / 'runs'}/{TINY.name}/config.yaml: "
                                       "No space left on device\n")
    assert list((tmp_path / "runs").iterdir()) == []                 # the run folder it began is gone


def test_threads_option_and_environment(tmp_path, monkeypatch, capsys):
    import torch
    monkeypatch.setenv("INC_THREADS", "two")
    assert main(["train", _config(tmp_path), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "INC_THREADS='two': expected a positive integer" in _one_error_line(capsys)
    assert not (tmp_path / "runs").exists()                         # refused before anything was written
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("INC_THREADS", "1")
    assert main(["--threads", "2", "runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert torch.get_num_threads() == 2 == settings.current().threads
    assert os.environ["INC_THREADS"] == "1"                         # the process's environment is left alone
    assert settings.environment()["INC_THREADS"] == "2"             # children (kernels, workers) get it
    torch.set_num_threads(3)                                        # as torch's own default would be
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert torch.get_num_threads() == 1                             # $INC_THREADS, applied with nothing to train


def test_a_cached_prune_times_the_networks_at_the_documented_thread_count(tmp_path, monkeypatch, capsys):
    """Thread count is applied by ``inc`` itself, not by a training or measurement cache miss."""
    import torch

    import inc_utils.prune.runs as prune_runs
    from inc_utils.train import train
    monkeypatch.delenv("INC_THREADS")                               # the package default: 1
    run = train(TINY.replace(epochs=30, n_per_class=None), runs_dir=tmp_path, progress=False)
    seen, speed_table = [], prune_runs.speed_table
    monkeypatch.setattr(prune_runs, "speed_table", lambda *a, **k: (seen.append(torch.get_num_threads()),
                                                                    speed_table(*a, **k))[1])
    for _ in range(2):                                              # measured, then every table cached
        torch.set_num_threads(2)                                    # torch's default on this machine
        assert main(["prune", run.name, "--layer", "1", "--runs-dir", str(tmp_path)]) == 0, capsys.readouterr()
    assert seen == [1, 1]


@pytest.mark.slow
def test_ctrl_c_stops_training_with_one_line_and_the_run_resumes(tmp_path):
    slow = TINY.replace(n_per_class=None, width=64, epochs=400, checkpoint_every=1)
    proc = subprocess.Popen([sys.executable, "-m", "inc_utils", "train", _config(tmp_path, slow),
                             "--runs-dir", str(tmp_path)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env={**os.environ, "INC_PROGRESS": "0"})
    run = Run.for_config(slow, tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and not run.checkpoint_epochs():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.startswith("interrupted: runs keep their last checkpoint") and err.count("\n") == 1, err
    assert run.status()["status"] == "stopped" and run.checkpoint_epochs()


def test_project_folder_is_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INC_RUNS_DIR")
    assert project_root() == ROOT
    assert settings.runs_dir() == ROOT / "runs"


def test_reproduce_mistakes_write_nothing(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    (project / "inc_utils").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "params" / "smoke").mkdir(parents=True)
    monkeypatch.chdir(project)
    assert main(["reproduce", "--scale", "nosuch"]) == 2
    assert "unknown scale 'nosuch'; choose from smoke" in _one_error_line(capsys)
    assert main(["reproduce", "--scale", "smoke"]) == 2
    assert "no chapter has parameters in" in _one_error_line(capsys)
    (project / "notebooks").mkdir()
    (project / "notebooks" / "01_tiny.py").write_text('# %% tags=["parameters"]\nalpha = 1\n')
    (project / "params" / "smoke" / "01_tiny.yaml").write_text("alpha: 2\n")
    assert main(["reproduce", "--scale", "smoke", "--dry-run"]) == 0
    assert not (project / "build").exists()


def test_measure_skips_a_damaged_newest_checkpoint_with_one_warning(tmp_path, capsys):
    from inc_utils.train import train
    run = train(TINY.replace(checkpoints=[2]), runs_dir=tmp_path, progress=False)
    newest = run.checkpoint_path(3)
    newest.write_bytes(newest.read_bytes()[:-10])
    with pytest.warns(UserWarning) as caught:
        assert main(["measure", run.name, "--runs-dir", str(tmp_path)]) == 0
    assert [str(w.message) for w in caught] == [f"not measured: {newest}: checksum mismatch (truncated or corrupted file)"]
    assert warnings.formatwarning(caught[0].message, UserWarning, "x.py", 1) == f"warning: {caught[0].message}\n"
    assert "layer of collapse (rel_trace_w < 0.2) at epoch 2:" in capsys.readouterr().out

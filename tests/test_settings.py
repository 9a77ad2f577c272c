"""Where things are and how a process runs: one module, one precedence rule (argument > environment > default)."""
from pathlib import Path

import pytest
import torch

from inc_utils import settings
from inc_utils.config import ConfigError
from inc_utils.sweep import TrainTask

ROOT = Path(__file__).resolve().parents[1]
ENV = {"INC_RUNS_DIR": "/env/runs", "INC_BUILD_DIR": "/env/build", "INC_THREADS": "3", "INC_PROGRESS": "0"}


def test_defaults_inside_and_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")                       # JupyterLab's kernel runs here
    s = settings.resolve(environ={})
    assert (s.project, s.runs, s.build, s.figures) == (ROOT, ROOT / "runs", ROOT / "build" / "lab",
                                                      ROOT / "build" / "lab" / "figures")
    assert (s.threads, s.progress) == (settings.DEFAULT_THREADS, True) == (1, True)
    monkeypatch.chdir(tmp_path)                                  # outside: the checkout the package came from
    assert settings.resolve(environ={}).project == ROOT


def test_environment_beats_defaults_and_arguments_beat_both():
    s = settings.resolve(environ=ENV)
    assert (s.runs, s.build, s.figures, s.threads, s.progress) == (
        Path("/env/runs"), Path("/env/build"), Path("/env/build/figures"), 3, False)
    s = settings.resolve(runs="/arg/runs", build="/arg/build", threads=2, progress=True, environ=ENV)
    assert (s.runs, s.build, s.threads, s.progress) == (Path("/arg/runs"), Path("/arg/build"), 2, True)


@pytest.mark.parametrize("environ, arguments, message", [
    ({"INC_THREADS": "two"}, {}, "INC_THREADS='two': expected a positive integer"),
    ({"INC_THREADS": "0"}, {}, "INC_THREADS='0': expected a positive integer"),
    ({}, {"threads": 0}, "threads must be a positive integer, got 0"),
])
def test_a_bad_thread_count_is_one_config_error(environ, arguments, message):
    with pytest.raises(ConfigError, match=message):
        settings.resolve(environ=environ, **arguments)


def test_a_child_given_the_environment_resolves_the_same_settings(tmp_path):
    parent = settings.resolve(runs=tmp_path / "r", build=tmp_path / "b", threads=4, progress=False, environ={})
    assert settings.resolve(environ=settings.environment(parent)) == parent


def test_applying_sets_the_thread_count_and_current_returns_it(monkeypatch):
    monkeypatch.setenv("INC_RUNS_DIR", "/from/env")
    assert settings.current().runs == Path("/from/env")          # nothing applied: the environment, each time
    torch.set_num_threads(3)
    applied = settings.apply(runs="/from/arg")
    assert torch.get_num_threads() == 1 and applied.threads == 1
    monkeypatch.setenv("INC_RUNS_DIR", "/changed")
    assert settings.current() == applied and settings.runs_dir() == Path("/from/arg")
    assert settings.runs_dir("/explicit") == Path("/explicit")
    assert settings.progress_enabled() is False and settings.progress_enabled(True) is True  # INC_PROGRESS=0 in tests


def test_a_sweep_worker_applies_its_makers_settings(tmp_path):
    maker = settings.apply(runs=tmp_path, threads=2)
    task = TrainTask(str(tmp_path), "cpu", None, batched=False)
    settings.use(maker.replace(threads=1))
    task([])                                                     # the same process: left as it is
    assert torch.get_num_threads() == 1
    task.maker = -1                                              # as if unpickled in a worker process
    task([])
    assert torch.get_num_threads() == 2 and settings.current() == maker


def test_paths_are_shown_relative_to_the_project_with_a_build_named_by_its_final_place(tmp_path):
    s = settings.resolve(environ={})
    staging = ROOT / "build" / f"{settings.staging_prefix('cpu')}k3j_x9" / "figures"
    assert settings.shown(staging, s) == "build/cpu/figures"
    assert settings.shown(ROOT / "runs", s) == "runs"
    assert settings.shown(tmp_path / "runs", s) == str(tmp_path / "runs")


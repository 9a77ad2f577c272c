"""Signals, with real processes: SIGINT however `inc` was started, SIGTERM, and process-pool sweeps
whose parent is signalled or killed or whose worker is killed. Every wait is bounded."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from inc_utils.config import RunConfig
from inc_utils.runs import Run

pytestmark = pytest.mark.slow  # real processes, signalled and killed

ROOT = Path(__file__).resolve().parents[1]
SLOW = RunConfig(dataset="digits", depth=2, width=64, epochs=400, lr_milestones=[], checkpoint_every=1)


def _inc(args, tmp_path, ignore_sigint=False):
    """Start ``python -m inc_utils args`` in its own process group (a job runner's child)."""
    def setup():
        os.setpgrp()
        if ignore_sigint:  # as a shell starts a background job (`make test &`, nohup)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    return subprocess.Popen([sys.executable, "-m", "inc_utils", *args, "--runs-dir", str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=setup,
                            env={**os.environ, "INC_PROGRESS": "0", "PYTHONPATH": str(ROOT)})


def _wait_for(predicate, timeout=300.0):  # generous: a loaded machine imports torch slowly
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:                      # a zombie has died already
        return f.read().split(")")[1].split()[0] != "Z"


def _writer_pid(run: Run) -> int:
    """The pid recorded in the run's lock file by the process holding it."""
    return int((run.path / ".lock").read_text().split()[1])


def _sweep_file(tmp_path, seeds) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": SLOW.to_dict(), "grid": {"seed": seeds}}))
    return str(path)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_training_even_when_started_with_sigint_ignored(tmp_path, signum, status):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(SLOW.to_dict()))
    proc = _inc(["train", str(config)], tmp_path, ignore_sigint=True)
    run = Run.for_config(SLOW, tmp_path / "runs")
    try:
        assert _wait_for(run.checkpoint_epochs)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == status
    assert err.startswith("interrupted: runs keep their last checkpoint") and err.count("\n") == 1, err
    assert run.status()["status"] == "stopped" and run.checkpoint_epochs()


def test_ctrl_c_twice_during_imports_is_one_line(tmp_path):
    proc = _inc(["runs"], tmp_path)
    time.sleep(0.3)                                               # torch is still being imported
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and err.startswith("interrupted: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_a_process_sweep_parent_stops_its_workers_and_queued_runs(tmp_path, signum, status):
    proc = _inc(["sweep", _sweep_file(tmp_path, [0, 1, 2]), "--executor", "processes", "--jobs", "2",
                 "--no-batched"], tmp_path)
    runs = [Run.for_config(SLOW.replace(seed=s), tmp_path / "runs") for s in (0, 1, 2)]
    try:
        assert _wait_for(lambda: all(r.checkpoint_epochs() for r in runs[:2]))
        workers = [_writer_pid(r) for r in runs[:2]]
        os.kill(proc.pid, signum)                                  # the parent only, as a job runner does
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == status and err.startswith("interrupted: ") and err.count("\n") == 1, err
    assert [r.status()["status"] for r in runs] == ["stopped", "stopped", "pending"]
    assert not runs[2].path.exists()                               # the queued run was never started
    assert _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)


def test_workers_die_with_a_killed_sweep_parent(tmp_path):
    proc = _inc(["sweep", _sweep_file(tmp_path, [0, 1]), "--executor", "processes", "--jobs", "2",
                 "--no-batched"], tmp_path)
    runs = [Run.for_config(SLOW.replace(seed=s), tmp_path / "runs") for s in (0, 1)]
    try:
        assert _wait_for(lambda: all(r.checkpoint_epochs() for r in runs))
        workers = [_writer_pid(r) for r in runs]
        proc.kill()                                                # SIGKILL: the parent cannot clean up
        proc.communicate(timeout=30)
        assert _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=30)
    finally:
        proc.kill()
    assert [r.status()["status"] for r in runs] == ["stopped", "stopped"]   # each worker marked its run


def test_a_killed_worker_is_one_line_and_the_others_stop(tmp_path):
    proc = _inc(["sweep", _sweep_file(tmp_path, [0, 1, 2]), "--executor", "processes", "--jobs", "2",
                 "--no-batched"], tmp_path)
    runs = [Run.for_config(SLOW.replace(seed=s), tmp_path / "runs") for s in (0, 1, 2)]
    try:
        assert _wait_for(lambda: all(r.checkpoint_epochs() for r in runs[:2]))
        victim, other = (_writer_pid(r) for r in runs[:2])
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1 and err.startswith("error: a sweep worker process died") and err.count("\n") == 1, err
    assert [r.status()["status"] for r in runs] == ["stopped", "stopped", "pending"]
    assert _wait_for(lambda: not _alive(other), timeout=10)

"""Run folders: one writer per run across real processes, stopped and damaged runs, unloadable
checkpoints, stale temporary files, file modes."""
import os
import pickle
import subprocess
import sys

import pytest
import torch
import yaml

from inc_utils.config import RunConfig
from inc_utils.runs import (CorruptCheckpointError, Run, RunLockedError, atomic_write_text, list_runs,
                            save_checkpoint_bytes)
from inc_utils.sweep import plan, sweep_table

CFG = RunConfig(dataset="digits", n_per_class=5, depth=2, width=8, epochs=3, lr_milestones=[])
HOLD = ("import sys, time; from inc_utils.runs import Run; held = Run(sys.argv[1]).lock(); held.__enter__(); "
        "print('held', flush=True); time.sleep(60)")


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock of a run folder; yields (run, process)."""
    procs = []

    def start(run: Run) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline() == "held\n"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _write_run(runs_dir, config=CFG, status="done") -> Run:
    run = Run.for_config(config, runs_dir)
    atomic_write_text(run.path / "config.yaml", yaml.safe_dump(config.to_dict()))
    run.set_status(status)
    return run


def test_one_writer_per_run_and_the_lock_dies_with_its_process(tmp_path, holder):
    run = _write_run(tmp_path, status="running")
    proc = holder(run)
    with pytest.raises(RunLockedError, match=rf"run {run.name} is being written by pid {proc.pid} \("):
        with run.lock():
            pass
    assert run.is_locked() and list_runs(tmp_path).status.tolist() == ["running"]
    proc.kill()
    proc.wait()
    assert not run.is_locked()
    assert list_runs(tmp_path).status.tolist() == ["stopped"]   # marked running, but nobody holds it
    with run.lock(), run.lock():                                 # free again; nests in one process
        assert run.is_locked()
    assert not run.is_locked()


def test_second_trainer_of_a_run_exits_with_one_line(tmp_path, holder, capsys):
    from inc_utils.__main__ import main
    run = Run.for_config(CFG, tmp_path)
    proc = holder(run)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(CFG.to_dict()))
    assert main(["train", str(path), "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: run {run.name} is being written by pid {proc.pid}")
    assert not (run.path / "status.json").exists()


def test_stale_temporary_files_are_removed_when_a_run_is_opened(tmp_path):
    run = _write_run(tmp_path)
    for stale in (run.path / ".log.csv.x1.tmp", run.checkpoint_dir / ".epoch_0002.pt.y2.tmp"):
        stale.parent.mkdir(exist_ok=True)
        stale.write_bytes(b"half")
    with run.lock():
        pass
    assert not list(run.path.rglob("*.tmp"))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("file, content, reason", [
    ("status.json", "", "status.json"),
    ("status.json", '{"status": "weird"}', "no known status"),
    ("log.csv", "\x00\x01garbage", "log.csv: damaged"),
    ("config.yaml", "", "config.yaml: damaged"),
    ("config.yaml", "lr: [1,", "config.yaml: damaged"),
    ("config.yaml", b"\xff\xfe\x00binary", "config.yaml: damaged"),
])
def test_a_damaged_folder_is_listed_not_fatal(tmp_path, file, content, reason):
    good = _write_run(tmp_path, CFG.replace(seed=1))
    bad = _write_run(tmp_path)
    (bad.path / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    table = list_runs(tmp_path).set_index("run")
    assert table.loc[good.name, "status"] == "done" and table.loc[bad.name, "status"] == "damaged"
    assert reason in table.loc[bad.name, "reason"] and "\n" not in table.loc[bad.name, "reason"]
    assert sweep_table([CFG, CFG.replace(seed=1)], tmp_path).status.tolist() == ["damaged", "done"]
    assert len(plan([CFG], tmp_path)) == 1


def test_list_shows_width_and_subset_size_and_run_takes_strings(tmp_path):
    run = _write_run(tmp_path)
    row = list_runs(tmp_path).iloc[0]
    assert (row.width, row.n_per_class, row.arch) == (8, 5, "mlp2")
    assert Run(str(run.path)) == run and Run(str(run.path)).config == CFG


class TouchOnLoad:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("payload", [b"", "crafted"])
def test_a_checkpoint_that_matches_its_checksum_but_does_not_load_is_skipped(tmp_path, payload):
    run = _write_run(tmp_path)
    run.save_checkpoint(1, {"epoch": 1, "model": {"w": torch.ones(2)}})
    target = tmp_path / "pwned"
    data = pickle.dumps({"model": TouchOnLoad(target)}) if payload == "crafted" else payload
    save_checkpoint_bytes(run.checkpoint_path(2), data)        # a valid checksum of bad bytes
    with pytest.raises(CorruptCheckpointError, match="epoch_0002.pt: cannot be loaded"):
        run.load_checkpoint(2)
    with pytest.warns(UserWarning, match="skipping .*epoch_0002.pt: cannot be loaded"):
        assert run.latest_valid_checkpoint()["epoch"] == 1
    assert not target.exists()


def test_a_checkpoint_without_its_checksum_is_not_used_silently(tmp_path):
    run = _write_run(tmp_path)
    run.save_checkpoint(1, {"epoch": 1, "model": {}})
    run.save_checkpoint(2, {"epoch": 2, "model": {}})
    (run.checkpoint_dir / "epoch_0002.pt.sha256").unlink()
    with pytest.warns(UserWarning, match="not using .*epoch_0002.pt: it has no checksum file"):
        assert run.latest_valid_checkpoint()["epoch"] == 1


def test_listing_runs_never_makes_a_writer_fail(tmp_path):
    """``inc runs`` tests each lock by taking it for an instant; a writer starting then retries."""
    import subprocess
    import sys
    import time

    from inc_utils.runs import hold_lock
    run = Run(tmp_path / "run")
    run.path.mkdir()
    (run.path / ".lock").touch()
    lister = subprocess.Popen([sys.executable, "-c", "import sys\nfrom inc_utils.runs import Run\n"
                               "run = Run(sys.argv[1])\nprint('ready', flush=True)\n"
                               "while True: run.is_locked()", str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert lister.stdout.readline() == "ready\n"
        deadline, taken = time.time() + 5, 0
        while time.time() < deadline:
            with hold_lock(run.path / ".lock", "run"):                # RunLockedError here fails the test
                taken += 1
        assert lister.poll() is None and taken > 100
    finally:
        lister.kill()
        lister.wait()

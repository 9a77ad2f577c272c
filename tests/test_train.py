"""Training loop, run store, checkpoints, resume after SIGKILL, divergence, CLI errors."""
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import inc_utils.train as train_module
from inc_utils.config import ConfigError, RunConfig
from inc_utils.runs import CorruptCheckpointError, Run, list_runs
from inc_utils.settings import resolve_device
from inc_utils.train import loss_fn, lr_at, train

TINY = RunConfig(dataset="digits", n_per_class=30, depth=3, width=32, epochs=12, lr=0.05,
                 lr_milestones=[6, 9], checkpoints=[4, 8], eval_every=4)


def _weights(run: Run) -> dict:
    return run.load_checkpoint(run.config.epochs)["model"]


def test_lr_schedule_with_warmup_and_milestones():
    cfg = RunConfig(lr=0.1, epochs=300, lr_milestones=[100, 200], lr_factor=0.1, warmup_epochs=4)
    assert [lr_at(e, cfg) for e in (1, 2, 4)] == pytest.approx([0.025, 0.05, 0.1])
    assert [lr_at(e, cfg) for e in (100, 101, 200, 201, 300)] == pytest.approx([0.1, 0.01, 0.01, 0.001, 0.001])


def test_device_names_are_checked_before_any_work(tmp_path, monkeypatch):
    assert resolve_device("auto") == resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="device 'gpu': .*use 'auto', 'cpu' or 'cuda'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device 'cuda:1': PyTorch sees no cuda device here"):
        train(TINY, runs_dir=tmp_path, device="cuda:1")
    assert not Run.for_config(TINY, tmp_path).path.exists()       # no failed run folder left behind


def test_loss_scalings():
    logits, y = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([2])
    assert loss_fn(logits, y, "mse").item() == pytest.approx(0.5 * (1 + 0 + 1))
    assert loss_fn(logits, y, "mse_mean").item() == pytest.approx(2 / 3)   # C/2 = 1.5 times smaller
    assert loss_fn(logits, y, "ce").item() == pytest.approx(-torch.log_softmax(logits, 1)[0, 2].item())


def test_train_writes_a_complete_run_and_second_call_is_a_cache_hit(tmp_path, monkeypatch):
    run = train(TINY, runs_dir=tmp_path, progress=False)
    assert run.path == tmp_path / TINY.name
    assert run.status()["status"] == "done" and run.finished
    assert run.config == TINY
    assert run.checkpoint_epochs() == [4, 8, 12]
    log = run.read_log()
    assert list(log.columns) == ["epoch", "lr", "loss", "train_acc", "test_acc", "seconds"]
    assert log["epoch"].tolist() == list(range(1, 13))
    assert log["lr"].tolist() == pytest.approx([0.05] * 6 + [0.005] * 3 + [0.0005] * 3)
    assert log["test_acc"].notna().tolist() == [e % 4 == 0 for e in range(1, 13)]
    assert log["train_acc"].iloc[-1] > 0.9 and log["loss"].iloc[-1] < log["loss"].iloc[0]
    state = run.load_checkpoint(12)
    assert set(state) >= {"epoch", "model", "optimizer", "order_rng", "torch_rng", "log"}
    prov = (run.path / "provenance.json").read_text()
    assert '"torch"' in prov and '"device": "cpu"' in prov

    monkeypatch.setattr(train_module, "train_epoch", lambda *a: pytest.fail("a finished run was retrained"))
    assert train(TINY, runs_dir=tmp_path, progress=False).path == run.path
    table = list_runs(tmp_path)
    assert table.loc[0, "status"] == "done" and table.loc[0, "epochs"] == "12/12"


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    full = train(TINY, runs_dir=tmp_path / "a", progress=False)
    part = Run.for_config(TINY, tmp_path / "b")
    train(TINY, runs_dir=tmp_path / "b", progress=False)
    for epoch in (8, 12):                      # roll back to epoch 4 as if killed after it
        part.checkpoint_path(epoch).unlink()
    part.set_status("running")
    resumed = train(TINY, runs_dir=tmp_path / "b", progress=False)
    for key, value in _weights(full).items():
        assert torch.equal(value, _weights(resumed)[key]), key
    assert resumed.read_log()["loss"].tolist() == full.read_log()["loss"].tolist()


def test_corrupted_checkpoint_is_detected_and_skipped(tmp_path):
    run = train(TINY, runs_dir=tmp_path, progress=False)
    path = run.checkpoint_path(12)
    path.write_bytes(path.read_bytes()[:-100])                 # truncated
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        run.load_checkpoint(12)
    with pytest.warns(UserWarning, match="skipping"):
        assert run.latest_valid_checkpoint()["epoch"] == 8
    data = bytearray(run.checkpoint_path(8).read_bytes())
    data[len(data) // 2] ^= 0xFF                               # one flipped byte
    run.checkpoint_path(8).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError):
        run.load_checkpoint(8)
    (run.checkpoint_dir / "epoch_0004.pt.sha256").unlink()     # killed between file and checksum
    assert run.checkpoint_epochs() == [8, 12]


def test_divergence_is_recorded_not_raised(tmp_path):
    cfg = TINY.replace(lr=1e6, lr_milestones=[])
    run = train(cfg, runs_dir=tmp_path, progress=False)
    status = run.status()
    assert status["status"] == "diverged" and run.finished
    log = run.read_log()
    assert len(log) == status["epoch"] < cfg.epochs
    assert not math.isfinite(log["loss"].iloc[-1])


def _cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "inc_utils", *args], capture_output=True, text=True,
                          env={**os.environ, "INC_PROGRESS": "0", **(env or {})}, **kw)


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_equal(tmp_path):
    cfg = TINY.replace(n_per_class=None, width=64, epochs=60, lr_milestones=[30, 45], checkpoints=[],
                       checkpoint_every=2)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    proc = subprocess.Popen([sys.executable, "-m", "inc_utils", "train", str(path), "--runs-dir",
                             str(tmp_path / "killed")], env={**os.environ, "INC_PROGRESS": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = Run.for_config(cfg, tmp_path / "killed")
    deadline = time.time() + 120
    while time.time() < deadline and max(killed.checkpoint_epochs(), default=0) < 6:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed.status()["status"] == "running", "the run finished before it could be killed"
    assert 6 <= max(killed.checkpoint_epochs()) < cfg.epochs

    for runs_dir in ("killed", "reference"):  # resumed and uninterrupted, each in a fresh process like the killed one
        subprocess.run([sys.executable, "-m", "inc_utils", "train", str(path), "--runs-dir", str(tmp_path / runs_dir)],
                       env={**os.environ, "INC_PROGRESS": "0"}, check=True, capture_output=True)
    resumed, reference = killed, Run.for_config(cfg, tmp_path / "reference")
    assert resumed.status()["status"] == "done"
    for key, value in _weights(reference).items():
        assert torch.equal(value, _weights(resumed)[key]), key
    assert resumed.read_log()["loss"].tolist() == reference.read_log()["loss"].tolist()


def test_cli_user_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("depht: 3\n")
    out = _cli("train", str(bad), "--runs-dir", str(tmp_path))
    assert out.returncode == 2
    ordinary = [k for k in RunConfig.__dataclass_fields__ if not k.startswith("ticket_")]
    assert out.stderr.strip() == ("error: unknown config key 'depht' (did you mean 'depth'?); known keys: "
                                  + ", ".join(ordinary + ["ticket_* (lottery-ticket rounds)"]))
    out = _cli("train", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "not found" in out.stderr
    good = tmp_path / "good.yaml"
    good.write_text("dataset: mnist\n")
    out = _cli("train", str(good), "--runs-dir", str(tmp_path), "--data-dir", str(tmp_path / "empty"),
               env={"INC_DATA_DIR": str(tmp_path / "empty"), "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert out.returncode == 2 and "Traceback" not in out.stderr and "mnist" in out.stderr


@pytest.mark.slow
def test_cli_train_and_list(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(TINY.to_dict()))
    out = _cli("train", str(path), "--set", "seed=3", "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    name = TINY.replace(seed=3).name
    assert out.stdout.strip() == f"done: {tmp_path / 'runs' / name}"
    out = _cli("runs", "--runs-dir", str(tmp_path / "runs"))
    assert name in out.stdout and "done" in out.stdout and "12/12" in out.stdout
    out = _cli("measure", name, "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    assert "nc1" in out.stdout and "layer of collapse (rel_trace_w < 0.2) at epoch 12:" in out.stdout
    assert (tmp_path / "runs" / name / "metrics.csv").exists()
    out = _cli("measure", "no-such-run", "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 2 and out.stderr.startswith("error: no run 'no-such-run'")

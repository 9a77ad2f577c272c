"""Batched training: same runs as one at a time, divergence, resume after a kill, checkpoint format, grouping.

Tolerance: a batched model differs from its solo run only by float32 round-off (``bmm`` vs
``mm``, BatchNorm reductions over a wider tensor). Over these 10 epochs the weights
drift apart by ~1e-6 (they are O(0.1-1)), so ``atol=1e-5`` leaves a 10x margin while a
single wrong step (lr, decay, order) moves them by >1e-3.
"""
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import inc_utils.batched as batched_module
from inc_utils.batched import batch_groups, train_batched
from inc_utils.config import RunConfig
from inc_utils.data import load_dataset
from inc_utils.measure import measure_run
from inc_utils.runs import Run
from inc_utils.models import build_for
from inc_utils.train import train

BASE = RunConfig(dataset="digits", n_per_class=40, depth=3, width=32, epochs=10, batch_size=32,
                 lr_milestones=[6, 8], checkpoints=[4, 8], eval_every=2)
CONFIGS = [BASE.replace(lr=0.01, weight_decay=5e-3, seed=0),
           BASE.replace(lr=0.05, weight_decay=1e-3, seed=1, momentum=0.5),
           BASE.replace(lr=0.1, weight_decay=0.0, seed=2)]
ATOL = 1e-5


@pytest.fixture(scope="module")
def solo(tmp_path_factory):
    """The three configs trained one at a time by train.train."""
    runs_dir = tmp_path_factory.mktemp("solo")
    return [train(c, runs_dir=runs_dir, progress=False) for c in CONFIGS]


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    """The three configs trained as one batched group."""
    return train_batched(CONFIGS, runs_dir=tmp_path_factory.mktemp("batched"), progress=False)


def _final(run: Run) -> dict:
    return run.load_checkpoint(run.config.epochs)


def assert_same_run(run: Run, ref: Run, exact: bool = False) -> None:
    """Same status, checkpoints, weights, momenta, RNG states and log (up to round-off unless ``exact``)."""
    assert run.status()["status"] == ref.status()["status"] == "done"
    assert run.checkpoint_epochs() == ref.checkpoint_epochs()
    a, b = _final(run), _final(ref)
    assert list(a["model"]) == list(b["model"])
    for key, value in b["model"].items():
        assert a["model"][key].dtype == value.dtype, key
        if exact or value.dtype == torch.long:
            assert torch.equal(a["model"][key], value), key
        else:
            torch.testing.assert_close(a["model"][key], value, atol=ATOL, rtol=0, msg=key)
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for i, state in b["optimizer"]["state"].items():
        torch.testing.assert_close(a["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"],
                                   atol=0 if exact else ATOL, rtol=0)
    assert torch.equal(a["order_rng"], b["order_rng"]) and torch.equal(a["torch_rng"], b["torch_rng"])
    assert (a["epoch"], a["lr"]) == (b["epoch"], b["lr"])
    log, ref_log = run.read_log(), ref.read_log()
    assert list(log.columns) == list(ref_log.columns)
    assert log["epoch"].tolist() == ref_log["epoch"].tolist() and log["lr"].tolist() == ref_log["lr"].tolist()
    assert log["loss"].tolist() == pytest.approx(ref_log["loss"].tolist(), rel=0 if exact else 1e-5)
    for key in ("train_acc", "test_acc"):   # round-off never flipped a prediction here
        assert log[key].fillna(-1).tolist() == ref_log[key].fillna(-1).tolist(), key


def test_batched_runs_equal_solo_runs(together, solo):
    assert [r.path.name for r in together] == [c.name for c in CONFIGS]
    for run, ref in zip(together, solo):
        assert_same_run(run, ref)
        assert run.config == ref.config and (run.path / "provenance.json").exists()
    log = together[2].read_log()
    assert log["test_acc"].notna().tolist() == [e % 2 == 0 for e in range(1, 11)]
    assert log["train_acc"].iloc[-1] > 0.9


def test_batched_runs_measure_like_solo_runs(together, solo):
    """Same NC measures and weight spectra at every checkpoint, up to the weights' round-off
    (largest relative difference seen: 2e-6, in the small nc2_cos_mean)."""
    for run, ref in zip(together, solo):
        tables, ref_tables = measure_run(run, progress=False), measure_run(ref, progress=False)
        for (a, b), value in zip(zip(tables, ref_tables), ("value", "sv_rel")):
            assert a.drop(columns=["run", value]).equals(b.drop(columns=["run", value]))
            np.testing.assert_allclose(a[value], b[value], rtol=1e-5, atol=1e-7)


def test_checkpoint_is_an_ordinary_model_and_train_resumes_it(together, solo, tmp_path):
    cfg = CONFIGS[1]
    state = together[1].load_checkpoint(8)
    model = build_for(cfg, load_dataset("digits"))
    model.load_state_dict(state["model"], strict=True)
    assert model.features[2].num_batches_tracked.item() == 8 * math.ceil(400 / 32)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    optimizer.load_state_dict(state["optimizer"])

    run = Run.for_config(cfg, tmp_path)                        # a batched run, killed after epoch 8 ...
    run.create(cfg, "cpu")
    run.save_checkpoint(4, together[1].load_checkpoint(4))
    run.save_checkpoint(8, state)
    run.write_log(state["log"])
    run.set_status("running")
    resumed = train(cfg, runs_dir=tmp_path, progress=False)     # ... finished by train.train,
    assert_same_run(resumed, solo[1])
    assert_same_run(resumed, together[1], exact=True)          # as row 1 of 3: bitwise its group's run


def test_diverging_member_is_marked_and_the_others_finish(solo, tmp_path):
    wild = BASE.replace(lr=1e6, seed=3)
    runs = train_batched([CONFIGS[0], wild, CONFIGS[2]], runs_dir=tmp_path, progress=False)
    status = runs[1].status()
    assert status["status"] == "diverged" and runs[1].finished
    log = runs[1].read_log()
    assert len(log) == status["epoch"] < wild.epochs
    assert not math.isfinite(log["loss"].iloc[-1]) and runs[1].checkpoint_epochs() == []
    assert log.columns.tolist() == solo[0].read_log().columns.tolist()
    assert_same_run(runs[0], solo[0])
    assert_same_run(runs[2], solo[2])
    wild_ones = train_batched([wild, wild.replace(seed=4)], runs_dir=tmp_path / "all", progress=False)
    assert [r.status()["status"] for r in wild_ones] == ["diverged", "diverged"]


def test_resume_after_simulated_kill_equals_uninterrupted(together, tmp_path, monkeypatch):
    runs = train_batched(CONFIGS, runs_dir=tmp_path, progress=False)
    runs[0].checkpoint_path(10).unlink()                     # killed while writing epoch 10's checkpoints:
    runs[0].checkpoint_path(8).unlink()                      # member 0 rolled back to 4,
    runs[1].checkpoint_path(10).unlink()                     # member 1 to 8
    for run in runs[:2]:
        run.set_status("running")
    seen, original = [], batched_module._train_group
    monkeypatch.setattr(batched_module, "_train_group",
                        lambda slots, *a: (seen.append(slots), original(slots, *a)))
    resumed = train_batched(CONFIGS, runs_dir=tmp_path, progress=False)
    assert [c and c.name for c in seen[0]] == [c.name for c in CONFIGS[:2]] + [None]  # member 2: a frozen row
    for run, ref in zip(resumed, together):
        assert_same_run(run, ref, exact=True)                             # CPU: bitwise equal

    monkeypatch.setattr(batched_module, "train_epoch", lambda *a: pytest.fail("a finished group was retrained"))
    assert train_batched(CONFIGS, runs_dir=tmp_path, progress=False) == resumed


def test_a_group_with_a_diverged_member_resumes_bitwise_together_or_alone(tmp_path):
    """The reproducer's case: a member diverged before the kill; the survivors resume in a stack of
    the group's shape (the diverged member a frozen row), or one of them alone by train.train."""
    group = [CONFIGS[0], BASE.replace(lr=8.0, seed=1), CONFIGS[2]]
    reference = train_batched(group, runs_dir=tmp_path / "reference", progress=False)
    assert reference[1].status()["status"] == "diverged" and reference[1].status()["epoch"] < 4
    killed = train_batched(group, runs_dir=tmp_path / "killed", progress=False)
    for run in (killed[0], killed[2]):                          # killed after epoch 4's checkpoints
        for epoch in (8, 10):
            run.checkpoint_path(epoch).unlink()
        run.set_status("running")
    assert train_batched(group, runs_dir=tmp_path / "killed", progress=False) == killed
    for run, ref in zip((killed[0], killed[2]), (reference[0], reference[2])):
        assert_same_run(run, ref, exact=True)
        assert run.load_checkpoint(10)["stack"] == {"size": 3, "row": group.index(run.config)}

    alone = Run.for_config(group[2], tmp_path / "killed")
    for epoch in (8, 10):
        alone.checkpoint_path(epoch).unlink()
    alone.set_status("running")
    assert_same_run(train(group[2], runs_dir=tmp_path / "killed", progress=False), reference[2], exact=True)


def test_a_restarted_sweep_rebuilds_the_groups_it_started_with(tmp_path):
    from inc_utils.sweep import tasks_for
    configs = [BASE.replace(lr=lr, seed=seed) for lr in (0.02, 0.05, 8.0) for seed in (0, 1)]
    first = tasks_for(configs, tmp_path, batched=True, group_size=3)
    assert [[c.name for c in g] for g in first] == [[c.name for c in configs[:3]], [c.name for c in configs[3:]]]
    for cfg in configs[4:]:                                      # the lr 8.0 members diverged
        Run.for_config(cfg, tmp_path).create(cfg, "cpu")
        Run.for_config(cfg, tmp_path).set_status("diverged")
    assert tasks_for(configs, tmp_path, batched=True, group_size=3) == first   # not regrouped 2 + 2
    for cfg in configs[:3]:
        Run.for_config(cfg, tmp_path).set_status("done")
    assert tasks_for(configs, tmp_path, batched=True, group_size=3) == first[1:]


SCRIPT = """
import sys
from inc_utils.batched import train_batched
from inc_utils.config import RunConfig
configs = [RunConfig(**c) for c in {configs!r}]
train_batched(configs, runs_dir=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    base = BASE.replace(n_per_class=None, width=64, epochs=30, lr_milestones=[15, 25], checkpoints=[],
                        checkpoint_every=2, eval_every=10)
    configs = [base.replace(lr=0.02, seed=0), base.replace(lr=0.08, seed=1, weight_decay=1e-3)]
    script = SCRIPT.format(configs=[c.to_dict() for c in configs])
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = [Run.for_config(c, tmp_path / "killed") for c in configs]
    deadline = time.time() + 120
    while time.time() < deadline and min(max(r.checkpoint_epochs(), default=0) for r in killed) < 6:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert all(r.status()["status"] == "running" for r in killed), "the group finished before it could be killed"
    assert 6 <= min(max(r.checkpoint_epochs()) for r in killed) < base.epochs

    resumed = train_batched(configs, runs_dir=tmp_path / "killed", progress=False)
    reference = train_batched(configs, runs_dir=tmp_path / "reference", progress=False)
    for run, ref in zip(resumed, reference):
        assert_same_run(run, ref, exact=True)


def test_batch_groups_and_refusals():
    a, b = BASE.replace(lr=0.1), BASE.replace(weight_decay=0.0, seed=4, momentum=0.0)
    deep, conv = BASE.replace(depth=4), BASE.replace(arch="convnet")
    other_data = BASE.replace(n_per_class=20, lr=0.2)
    assert batch_groups([a, conv, deep, b, a, other_data, BASE.replace(depth=4, seed=1)]) == \
        [[a, b], [deep, BASE.replace(depth=4, seed=1)], [other_data]]
    assert batch_groups([conv]) == []
    seven = [BASE.replace(seed=s) for s in range(7)]
    assert [len(g) for g in batch_groups(seven, max_size=3)] == [2, 3, 2]    # fewest parts, near-equal
    assert [c for g in batch_groups(seven, max_size=3) for c in g] == seven
    assert batch_groups(seven, max_size=7) == [seven] and len(batch_groups(seven * 2, max_size=1)) == 7
    with pytest.raises(ValueError, match="at least 1"):
        batch_groups(seven, max_size=0)
    for bad in ([a, deep], [a, conv], [BASE.replace(epochs=20), a], []):
        with pytest.raises(ValueError, match="differ only in lr, weight_decay, momentum, seed"):
            train_batched(bad, runs_dir="/nonexistent")

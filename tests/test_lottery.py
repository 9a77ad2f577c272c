"""Lottery tickets: mask rules on known weights, masked training, rounds as cached, resumable runs."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from inc_utils.config import ConfigError, RunConfig
from inc_utils.lottery import MASK_FILE, load_masks, start_model, ticket_config
from inc_utils.masks import apply_masks, densities, effective_state_dict, magnitude_masks, random_masks
from inc_utils.measure import load_model
from inc_utils.models import MLP, probe_points
from inc_utils.runs import CorruptCheckpointError, Run
from inc_utils.data import load_splits
from inc_utils.models import build_for
from inc_utils.train import train

PARENT = RunConfig(dataset="digits", n_per_class=30, depth=3, width=32, epochs=12, lr=0.05,
                   lr_milestones=[6, 9], checkpoints=[4, 8], eval_every=4)


def _round(r: int, random: bool = False, **kw) -> RunConfig:
    return ticket_config(PARENT, r, rate=0.5, output_rate=0.2, rewind=4, epochs=kw.pop("epochs", 6),
                         random=random, **kw)


# ------------------------------------------------------------------------------------ config
def test_existing_configs_keep_their_hashes_and_ticket_fields_change_them():
    assert RunConfig().hash == "ec5b3ec9a177"                       # the smoke default, before tickets existed
    cpu = dict(dataset="fashion_mnist", n_per_class=500, arch="mlp", depth=8, width=256, epochs=150, lr=0.015,
               weight_decay=0.005, lr_milestones=[50, 100], checkpoints=[10, 25, 50, 100], eval_every=10)
    assert RunConfig(**cpu).name == "fashion_mnist-mlp8-3100b7566603"  # chapter 1's cpu network
    base = _round(1)
    others = [base.replace(ticket_round=2), base.replace(ticket_rate=0.4), base.replace(ticket_output_rate=0.1),
              base.replace(ticket_rewind=8), base.replace(ticket_random=True), base.replace(ticket_parent="other")]
    assert len({c.hash for c in [base, *others]}) == 7
    assert base.ticket_parent == PARENT.name and base.lr_milestones == [3, 5]   # 6/12 and 9/12 of 6 epochs


def test_ticket_fields_are_checked():
    with pytest.raises(ConfigError, match="ticket_parent"):
        RunConfig(ticket_round=1)
    with pytest.raises(ConfigError, match="ticket_rate"):
        _round(1).replace(ticket_rate=1.0)


# ------------------------------------------------------------------------------------- masks
def test_magnitude_pruning_is_global_over_hidden_layers_and_the_output_layer_has_its_own_rate():
    big, small = torch.full((2, 4), 10.0), torch.arange(1.0, 9.0).view(2, 4) / 100  # 8 large, 8 small weights
    out = torch.arange(1.0, 11.0).view(10, 1)
    masks = magnitude_masks([big, small, out], [torch.ones(2, 4), torch.ones(2, 4), torch.ones(10, 1)], 0.5, 0.2)
    assert masks[0].sum() == 8 and masks[1].sum() == 0             # one threshold across both hidden layers
    assert masks[2].flatten().tolist() == [0, 0] + [1] * 8         # the output layer's own 20%, smallest first
    again = magnitude_masks([big, small * 1000, out], masks, 0.5, 0.2)
    assert masks[1].sum() == 0 and again[1].sum() == 0             # a pruned weight never comes back
    assert again[0].sum() == 4 and again[2].sum() == 6             # half of the 8 survivors; 8 - round(1.6)


def test_random_masks_keep_each_layers_count_at_other_places():
    masks = magnitude_masks([torch.randn(20, 30), torch.randn(20, 20), torch.randn(10, 20)],
                            [torch.ones(20, 30), torch.ones(20, 20), torch.ones(10, 20)], 0.6, 0.3)
    control = random_masks(masks, torch.Generator().manual_seed(0))
    assert [m.sum() for m in control] == [m.sum() for m in masks]
    assert densities(control) == densities(masks)
    assert not torch.equal(control[0], masks[0])
    assert all(torch.equal(a, b) for a, b in zip(control, random_masks(masks, torch.Generator().manual_seed(0))))


def test_masked_weights_stay_zero_under_momentum_and_weight_decay_and_load_as_a_plain_model():
    torch.manual_seed(0)
    model = MLP(6, 3, depth=2, width=8)
    masks = random_masks([torch.ones_like(p.weight) * (torch.rand_like(p.weight) < 0.5) for p in probe_points(model)],
                         torch.Generator().manual_seed(1))
    apply_masks(model, masks)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(5):
        loss = model(torch.randn(16, 6)).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = effective_state_dict(model)
    plain = MLP(6, 3, depth=2, width=8)
    assert list(state) == list(plain.state_dict())
    plain.load_state_dict(state)
    for point, mask in zip(probe_points(plain), masks):
        assert torch.all(point.weight[mask == 0] == 0) and torch.all(point.weight[mask == 1] != 0)
    x = torch.randn(4, 6)
    assert torch.equal(plain.eval()(x), model.eval()(x))
    assert sum(int(m.sum()) for m in masks) == sum(int((p.weight != 0).sum()) for p in probe_points(plain))


# ------------------------------------------------------------------------------ rounds as runs
def test_rounds_train_their_predecessors_rewind_and_store_checked_masks(tmp_path):
    parent = train(PARENT, runs_dir=tmp_path)
    second = train(_round(2), runs_dir=tmp_path)                   # trains round 1 first
    first = Run.for_config(_round(1), tmp_path)
    assert first.finished and second.finished
    m1, m2 = load_masks(first), load_masks(second)
    assert all(torch.all(b <= a) for a, b in zip(m1, m2))           # nested: round 2 prunes round 1's survivors
    hidden = sum(m.numel() for m in m1[:-1])
    assert sum(m.sum() for m in m1[:-1]) == hidden - round(0.5 * hidden)
    weights = load_model(second, 6).state_dict()
    for point, mask in zip(probe_points(load_model(second, 6)), m2):
        assert torch.all(point.weight[mask == 0] == 0)
    assert weights  # measured like any run: plain keys

    control = train(_round(2, random=True), runs_dir=tmp_path)
    assert densities(load_masks(control)) == densities(m2)
    assert not torch.equal(load_masks(control)[0], m2[0])

    # the round starts from the parent's epoch-4 weights, masked
    train_set, _ = load_splits(_round(2), "cpu")
    torch.manual_seed(PARENT.seed)
    model = build_for(_round(2), train_set)
    masks = start_model(second, _round(2), model, train_set, tmp_path)
    rewound = parent.load_checkpoint(4)["model"]
    apply_masks(model, masks)
    for key, value in effective_state_dict(model).items():
        expected = rewound[key] * masks[[p.name for p in probe_points(model)].index(key[:-7])] \
            if key.endswith(".weight") and value.dim() == 2 else rewound[key]
        assert torch.equal(value, expected), key

    # cached: training again does nothing; a damaged mask is refused, not used
    stamp = (second.path / "log.csv").stat().st_mtime_ns
    assert train(_round(2), runs_dir=tmp_path).path == second.path
    assert (second.path / "log.csv").stat().st_mtime_ns == stamp
    data = bytearray((second.path / MASK_FILE).read_bytes())
    data[-10] ^= 0xFF
    (second.path / MASK_FILE).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="checksum"):
        load_masks(second)


def test_a_ticket_of_a_missing_or_different_parent_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="ticket_parent"):
        train(_round(1), runs_dir=tmp_path)
    train(PARENT, runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="width"):
        train(_round(1).replace(width=16), runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(_round(1).replace(ticket_rewind=5), runs_dir=tmp_path)


@pytest.mark.slow
def test_a_killed_round_resumes_bitwise_equal(tmp_path):
    parent = PARENT.replace(n_per_class=None, width=64)         # all of digits: slow enough to kill mid-way
    cfg = ticket_config(parent, 1, rate=0.5, output_rate=0.2, rewind=4, epochs=30).replace(checkpoint_every=2)
    path = tmp_path / "round.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    train(parent, runs_dir=tmp_path / "killed")
    shutil.copytree(tmp_path / "killed", tmp_path / "reference")
    env = {**os.environ, "INC_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "inc_utils", "train", str(path), "--runs-dir",
                             str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = Run.for_config(cfg, tmp_path / "killed")
    deadline = time.time() + 600  # a loaded shared machine can take minutes to start the process
    while time.time() < deadline and max(killed.checkpoint_epochs(), default=0) < 6:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed.status()["status"] == "running", "the round finished before it could be killed"
    assert 6 <= max(killed.checkpoint_epochs()) < cfg.epochs
    for runs_dir in ("killed", "reference"):
        subprocess.run([sys.executable, "-m", "inc_utils", "train", str(path), "--runs-dir", str(tmp_path / runs_dir)],
                       env=env, check=True, capture_output=True)
    reference = Run.for_config(cfg, tmp_path / "reference")
    assert killed.status()["status"] == "done"
    for key, value in reference.load_checkpoint(cfg.epochs)["model"].items():
        assert torch.equal(value, killed.load_checkpoint(cfg.epochs)["model"][key]), key
    assert killed.read_log()["loss"].tolist() == reference.read_log()["loss"].tolist()
    assert all(torch.equal(a, b) for a, b in zip(load_masks(killed), load_masks(reference)))

"""Cutting trained networks at a layer (thesis 5.5.1): heads, costs, export, the `inc prune` command."""
import subprocess
import sys

import pytest
import torch

from inc_utils.__main__ import main
from inc_utils.capture import stream_features
from inc_utils.config import RunConfig
from inc_utils.measure import load_model, measure_run
from inc_utils.metrics import collapse_layer
from inc_utils.models import build_model, probe_points
from inc_utils.prune import (CutError, cost, cost_table, cut_layers, earliest_keeping, evaluate_heads, export,
                             fit_heads, layer_table, trunk, truncate)
from inc_utils.runs import Run
from inc_utils.data import load_splits
from inc_utils.train import train

# Collapses from layer 3 (relative within-class trace 0.07 there) in about 5 s.
COLLAPSED = RunConfig(dataset="digits", n_per_class=50, depth=3, width=64, epochs=100, lr=0.05, weight_decay=0.01,
                      lr_milestones=[50], checkpoints=[], eval_every=100)


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory):
    run = train(COLLAPSED, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)
    train_set, test_set = load_splits(COLLAPSED, "cpu")
    return run, load_model(run, COLLAPSED.epochs, "cpu", train_set), train_set, test_set


def test_ridge_head_at_the_last_layer_reproduces_the_network_on_a_collapsed_run(collapsed):
    run, model, train_set, test_set = collapsed
    metrics, _ = measure_run(run, progress=False)
    assert collapse_layer(metrics) == 3
    heads = fit_heads(model, lambda: train_set.batches(128), [3], heads=("ridge",), ridge=COLLAPSED.weight_decay)
    for split in (train_set, test_set):
        table = evaluate_heads(model, heads, lambda: split.batches(100)).set_index("head")
        assert table.loc["ridge", "agreement"] == 1.0
        assert table.loc["ridge", "accuracy"] == table.loc["network", "accuracy"]


def test_ncc_head_is_the_nc4_measure_at_every_layer(collapsed):
    run, model, train_set, test_set = collapsed
    metrics, _ = measure_run(run, progress=False)
    nc4 = metrics[(metrics.measure == "ncc_acc") & (metrics.split == "test")].set_index("layer")["value"]
    table = evaluate_heads(model, fit_heads(model, lambda: train_set.batches(64)), lambda: test_set.batches(512))
    ncc = table[table["head"] == "ncc"].set_index("layer")["accuracy"]
    assert ncc.index.tolist() == [0, 1, 2, 3]
    assert ncc.tolist() == pytest.approx(nc4.loc[ncc.index].tolist(), abs=1e-12)


def test_truncated_model_computes_the_heads_scores_from_the_layers_features(collapsed):
    _, model, train_set, test_set = collapsed
    heads = fit_heads(model, lambda: train_set.batches(512), heads=("ncc", "ridge"))
    x, _ = next(iter(test_set.batches(50)))
    features = []
    stream_features(model, [(x, torch.zeros(len(x), dtype=torch.long))], [p.module for p in probe_points(model)],
                    lambda f, logits, y: features.extend(f))
    for (layer, kind), head in heads.items():
        cut = truncate(model, head)
        assert not cut.training
        torch.testing.assert_close(trunk(model, layer)(x), features[layer].flatten(1))
        torch.testing.assert_close(cut(x).double(), head.scores(features[layer]), rtol=1e-4, atol=1e-4)
    assert len(truncate(model, heads[0, "ncc"])[0]) == 2          # layer 0: Flatten, then the final Flatten


def test_costs_count_parameters_and_multiply_adds(collapsed):
    _, model, train_set, _ = collapsed
    w, d, c = COLLAPSED.width, 64, 10
    full = cost(model, train_set.in_shape)
    assert full["macs"] == d * w + 2 * w * w + w * c
    assert full["params"] == d * w + 2 * w * w + w * c + 3 * 2 * w            # + BatchNorm's weight and bias
    table = cost_table(model, train_set.in_shape, c).set_index("layer")
    assert table.loc[0, "macs"] == d * c and table.loc[0, "params"] == (d + 1) * c
    assert table.loc[2, "macs"] == d * w + w * w + w * c
    assert table.loc[3, "macs_frac"] == 1.0 and table["macs_frac"].is_monotonic_increasing


def test_layer_table_and_the_earliest_layer_that_keeps_the_accuracy(collapsed):
    _, model, train_set, test_set = collapsed
    table = layer_table(model, lambda: train_set.batches(512), lambda: test_set.batches(512), train_set.in_shape,
                        ridge=COLLAPSED.weight_decay)
    assert set(table["head"]) == {"network", "ncc", "ridge"} and len(table) == 1 + 2 * 4
    net = table.loc[table["head"] == "network", "accuracy"].item()
    ridge = table[table["head"] == "ridge"].set_index("layer")["accuracy"]
    expected = min(layer for layer, acc in ridge.items() if acc >= net - 0.01)
    assert earliest_keeping(table, "ridge", 0.01) == expected
    assert earliest_keeping(table, "ridge", 0.0) == min(layer for layer, acc in ridge.items() if acc >= net)
    assert earliest_keeping(table, "ridge", -1.0) is None


def test_convnet_and_resnet_cuts():
    torch.manual_seed(0)
    convnet = build_model("convnet", 3, in_shape=(1, 8, 8), num_classes=10, width=4).eval()
    assert cut_layers(convnet) == [0, 1, 2, 3]
    assert trunk(convnet, 1)(torch.randn(2, 1, 8, 8)).shape == (2, 4 * 4 * 4)
    resnet = build_model("resnet", 18, in_shape=(1, 8, 8), num_classes=10).eval()
    names = {p.layer: p.name for p in probe_points(resnet)}
    boundaries = cut_layers(resnet)
    assert [names[b] for b in boundaries[:3]] == ["conv1", "layer1.0.conv1", "layer1.1.conv1"]
    assert names[boundaries[-1]] == "fc" and len(boundaries) == 1 + 8 + 1
    x = torch.randn(3, 1, 8, 8)
    captured = []
    stream_features(resnet, [(x, torch.zeros(3, dtype=torch.long))], [probe_points(resnet)[b].module for b in boundaries],
                    lambda f, logits, y: captured.extend(f))
    for layer, features in zip(boundaries, captured):
        torch.testing.assert_close(trunk(resnet, layer)(x), features.flatten(1))
    with pytest.raises(CutError, match=r"layer 2 is inside a residual block; a ResNet can be cut only at block "
                                       r"boundaries, layers 0, 1, 3, 5"):
        trunk(resnet, 2)


EXPORTED_IN_A_FRESH_PROCESS = """
import sys
sys.modules["inc_utils"] = None  # importing inc_utils now fails: the file must not need it
import torch
torch.set_num_threads(int(sys.argv[4]))  # as many as the test process: the same GEMM kernels, bitwise results
module = torch.export.load(sys.argv[1]).module()
x = torch.load(sys.argv[2], weights_only=True)
torch.save(module(x).detach(), sys.argv[3])
"""


@pytest.mark.slow
def test_exported_model_runs_without_inc_utils_and_gives_identical_outputs(collapsed, tmp_path):
    _, model, train_set, test_set = collapsed
    head = fit_heads(model, lambda: train_set.batches(512), [2], heads=("ridge",))[2, "ridge"]
    cut = truncate(model, head)
    path = export(cut, tmp_path / "cut.pt2", train_set.in_shape)
    for batch in (1, 7):
        x, _ = next(iter(test_set.batches(batch)))
        torch.save(x, tmp_path / "x.pt")
        subprocess.run([sys.executable, "-I", "-c", EXPORTED_IN_A_FRESH_PROCESS, str(path), "x.pt", "out.pt",
                        str(torch.get_num_threads())],
                       cwd=tmp_path, check=True, env={"PATH": "/usr/bin:/bin"})
        with torch.no_grad():
            expected = cut(x)
        exported = torch.load(tmp_path / "out.pt", weights_only=True)
        assert torch.equal(exported.argmax(1), expected.argmax(1))
        torch.testing.assert_close(exported, expected, rtol=1e-6, atol=1e-6)  # float32 rounding of a re-traced graph


def test_cli_prune_writes_the_model_and_reports_it(collapsed, tmp_path, capsys):
    run, *_ = collapsed
    out = tmp_path / "cut.pt2"
    assert main(["prune", run.name, "--runs-dir", str(run.path.parent), "--head", "ncc", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{run.name} cut at layer 3 (auto: the layer of collapse, ncc head")
    for row in ("test accuracy", "parameters", "multiply-adds per sample", "latency, batch 1 (ms)",
                "samples/s, batch 256"):
        assert row in printed
    assert torch.export.load(out).module()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_cli_prune_user_errors_are_one_line(collapsed, tmp_path, capsys):
    run, *_ = collapsed
    runs_dir = str(run.path.parent)

    def error(*args):
        out = tmp_path / "never.pt2"
        assert main(["prune", *args, "--runs-dir", runs_dir, "-o", str(out)]) == 2
        assert not out.exists()
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ")
        return err

    assert "layer 4 is out of range: this network has layers 0..3" in error(run.name, "--layer", "4")
    assert "--layer must be a layer number or 'auto', got 'x'" in error(run.name, "--layer", "x")
    assert "no run 'nope'" in error("nope")
    empty = Run(run.path.parent / "empty")
    empty.create(COLLAPSED.replace(seed=5), "cpu")
    assert f"run {empty.name} has no checkpoints" in error(str(empty.path))
    resnet_cfg = RunConfig(dataset="digits", arch="resnet", depth=18, epochs=1, lr_milestones=[], checkpoints=[1],
                           eval_every=1)
    resnet = Run.for_config(resnet_cfg, runs_dir)
    resnet.create(resnet_cfg, "cpu")
    model = build_model("resnet", 18, in_shape=(1, 8, 8), num_classes=10)
    resnet.save_checkpoint(1, {"model": model.state_dict()})
    assert "a ResNet can be cut only at block boundaries, layers 0, 1, 3, 5" in error(resnet.name, "--layer", "2")

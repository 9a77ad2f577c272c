"""Measuring runs: cached per checkpoint, versioned, summaries for sweeps, figures."""
import json

import matplotlib
import pandas as pd
import pytest

import inc_utils.measure as measure_module
from inc_utils import plots
from inc_utils.config import RunConfig
from inc_utils.measure import MEASURE_VERSION, collapse_summary, measure_run
from inc_utils.metrics import MEASURES
from inc_utils.train import train

matplotlib.use("Agg")
CFG = RunConfig(dataset="digits", n_per_class=40, depth=3, width=32, epochs=8, lr=0.05, lr_milestones=[],
                checkpoints=[4], eval_every=4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(CFG, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def test_measure_run_covers_every_checkpoint_layer_split_and_measure(run):
    metrics, spectra = measure_run(run, progress=False)
    assert list(metrics.columns) == ["run", "epoch", "split", "layer", "name", "measure", "value"]
    assert sorted(metrics.epoch.unique()) == [4, 8]
    layers = metrics[metrics.layer >= 0]
    assert sorted(layers.layer.unique()) == [0, 1, 2, 3]
    assert set(layers.measure) == set(MEASURES)
    net = metrics[metrics.measure == "net_acc"].set_index(["epoch", "split"])["value"]
    log = run.read_log().set_index("epoch")
    assert net[(8, "train")] == pytest.approx(log.loc[8, "train_acc"])
    assert net[(8, "test")] == pytest.approx(log.loc[8, "test_acc"])
    assert set(spectra.layer) == {0, 1, 2, 3} and (spectra.groupby(["epoch", "layer"]).sv_rel.sum() <= 1 + 1e-9).all()


def test_measuring_without_checkpoints_is_a_clear_error(run):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for epoch\(s\) \[5\]"):
        measure_run(run, epochs=[5], progress=False)


def test_measurements_are_cached_and_versioned(run, monkeypatch):
    first, _ = measure_run(run, progress=False)
    monkeypatch.setattr(measure_module, "measure_model", lambda *a, **k: pytest.fail("measured twice"))
    again, _ = measure_run(run, progress=False)
    pd.testing.assert_frame_equal(first, again)
    only_last, _ = measure_run(run, epochs=[8], progress=False)
    assert set(only_last.epoch) == {8}
    (run.path / "metrics.json").write_text(json.dumps({"version": MEASURE_VERSION - 1}))
    with pytest.raises(pytest.fail.Exception, match="measured twice"):
        measure_run(run, progress=False)


def test_collapse_summary_excludes_diverged_and_weak_runs(run):
    runs_dir = run.path.parent
    diverged = train(CFG.replace(lr=1e6), runs_dir=runs_dir, progress=False)
    assert diverged.status()["status"] == "diverged"
    summary = collapse_summary([CFG, CFG.replace(lr=1e6)], runs_dir=runs_dir, accuracy_floor=0.35, progress=False)
    assert summary.status.tolist() == ["done", "diverged"]
    assert summary.included.tolist() == [True, False] and summary.reason.tolist() == ["", "diverged"]
    strict = collapse_summary([CFG], runs_dir=runs_dir, accuracy_floor=1.01, progress=False)
    assert strict.reason.tolist() == ["test accuracy below 1.01"]
    not_fitting = collapse_summary([CFG], runs_dir=runs_dir, train_accuracy_floor=1.01, progress=False)
    assert not_fitting.reason.tolist() == ["train accuracy below 1.01"] and not not_fitting.included[0]
    with pytest.raises(ValueError, match="unknown rule 'last'"):  # the rule reaches collapse_layer
        collapse_summary([CFG], runs_dir=runs_dir, rule="last", progress=False)
    assert summary.test_acc[0] == pytest.approx(run.read_log().test_acc.iloc[-1])


def test_figures_draw_one_line_per_checkpoint_and_save(run, tmp_path):
    metrics, spectra = measure_run(run, progress=False)
    fig = plots.plot_nc1(metrics, collapse=2)
    nc1_axis = fig.axes[0]
    assert len([l for l in nc1_axis.get_lines() if l.get_label().startswith("epoch")]) == 2
    assert any(l.get_label() == "layer of collapse" for l in nc1_axis.get_lines())
    for f in (plots.plot_nc2(metrics), plots.plot_nc3(metrics, spectra), plots.plot_nc4(metrics),
              plots.plot_accuracy(run.read_log()), plots.plot_grid({"a": metrics, "b": metrics})):
        assert f.axes
    path = plots.save_figure(fig, "nc1", tmp_path)
    assert path.exists() and (tmp_path / "nc1.pdf").exists()
    summary = pd.DataFrame({"lr": [0.1, 0.1], "weight_decay": [1e-3, 1e-3], "test_acc": [0.9, 0.8],
                            "collapse_layer": [2, None]})
    ax = plots.plot_collapse_vs_error(summary, num_layers=4).axes[0]
    xs = ax.collections[0].get_offsets()[:, 0]
    assert abs(xs[0] - 2) <= 0.15 and abs(xs[1] - 4) <= 0.15        # "none" drawn at num_layers
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3", "none"]

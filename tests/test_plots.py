"""Figures are inspected, not just drawn: panels, axis labels, legend entries and line data."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from inc_utils import metrics as M  # noqa: E402
from inc_utils import plots  # noqa: E402

LAYERS, EPOCHS = [0, 1, 2, 3], [10, 20]


def value(measure: str, layer: int, epoch: int) -> float:
    """A known value per cell; rel_trace_w at epoch 20 is 0.75 / (1 + layer): below 0.2 at layer 3 only."""
    return (1 + list(M.MEASURES).index(measure)) * 0.5 / (1 + layer) * 10 / epoch


def table(measures=tuple(M.MEASURES)) -> pd.DataFrame:
    rows = [dict(epoch=e, split=s, layer=l, name=f"l{l}", measure=m, value=value(m, l, e))
            for e in EPOCHS for s in ("train", "test") for l in LAYERS for m in measures]
    rows += [dict(epoch=e, split=s, layer=-1, name="network", measure=M.NET_ACC, value=acc)
             for e in EPOCHS for s, acc in (("train", 1.0), ("test", 0.9))]
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legend_texts(fig) -> list[str]:
    legends = fig.legends or [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def panels(fig) -> dict[str, plt.Axes]:
    return {ax.get_title(): ax for ax in fig.axes}


def lines(ax, label: str):
    return [line for line in ax.get_lines() if line.get_label() == label]


def test_nc2_panels_hold_the_known_values_with_the_collapse_layer_marked():
    fig = plots.plot_nc2(table(), "NC2 test")
    assert list(panels(fig)) == [plots.AXES[m][0] for m, _ in plots.NC2_PANELS]
    for (measure, _), ax in zip(plots.NC2_PANELS, fig.axes):
        assert ax.get_xlabel() == "layer" and ax.get_ylabel() == plots.AXES[measure][1]
        for epoch in EPOCHS:
            (line,) = lines(ax, f"epoch {epoch}")
            np.testing.assert_array_equal(line.get_xdata(), LAYERS)
            np.testing.assert_allclose(line.get_ydata(), [value(measure, l, epoch) for l in LAYERS])
        (mark,) = lines(ax, "layer of collapse")
        assert list(mark.get_xdata()) == [3, 3]
    assert legend_texts(fig) == ["epoch 10", "epoch 20", "layer of collapse (3)"]
    assert fig._suptitle.get_text() == "NC2 test"


def test_nc1_log_panels_threshold_and_legend():
    fig = plots.plot_nc1(table(), collapse=2, threshold=0.3)
    axes = panels(fig)
    assert len(axes) == 5
    assert {t for t, ax in axes.items() if ax.get_yscale() == "log"} == {
        plots.AXES[m][0] for m in (M.NC1, M.TRACE_W, M.TRACE_B, M.CDNV)}
    rel = axes[plots.AXES[M.REL_TRACE_W][0]]
    assert any(list(line.get_ydata()) == [0.3, 0.3] for line in rel.get_lines())
    assert legend_texts(fig) == ["epoch 10", "epoch 20", "layer of collapse (2)", "collapse threshold"]


def test_nc4_draws_the_network_accuracy_of_each_split():
    fig = plots.plot_nc4(table())
    axes = panels(fig)
    assert set(axes) == {"NC4 NCC accuracy", "NC4 NCC accuracy (test)",
                         "NC4 NCC agrees with network"}
    for title, acc in (("NC4 NCC accuracy", 1.0), ("NC4 NCC accuracy (test)", 0.9)):
        dotted = [list(line.get_ydata()) for line in axes[title].get_lines() if line.get_linestyle() == ":"]
        assert dotted == [[acc, acc]]
    assert "network accuracy (last epoch)" in legend_texts(fig)


def test_grid_has_a_row_per_experiment_its_own_collapse_and_says_what_is_missing():
    no_nc3 = table([m for m in M.MEASURES if m != M.NC3_AVCOS])
    fig = plots.plot_grid({"a": table(), "b": no_nc3}, plots.GRID_NC34, "grid", collapse={"a": 1, "b": 3})
    assert len(fig.axes) == 2 * len(plots.GRID_NC34)
    first, second = fig.axes[:4], fig.axes[4:]
    assert all(lines(ax, "layer of collapse")[0].get_xdata()[0] == 1 for ax in first)
    assert all(lines(ax, "layer of collapse")[0].get_xdata()[0] == 3 for ax in second)
    assert [t.get_text() for t in second[0].texts if t.get_text() == "not measured"] == ["not measured"]
    assert not lines(second[0], "epoch 20") and lines(first[0], "epoch 20")
    assert all(ax.get_ylabel() for ax in fig.axes)


def test_nc3_singular_values_per_layer_and_epoch_legend():
    spectra = pd.DataFrame([dict(epoch=20, layer=l, name=f"l{l}", index=i, sv_rel=1 / (i + l))
                            for l in LAYERS for i in range(1, 6)])
    fig = plots.plot_nc3(table(), spectra, num_classes=3, collapse=2)
    ax_sv, ax_cos = fig.axes
    texts = legend_texts(fig)
    # σ_i = 1/(i + l): the largest ratio σ_i/σ_(i+1) is the first, so every weight's gap is after σ_1
    assert texts[:4] == ["layer 0, gap after 1", "layer 1, gap after 1", "layer 2 (collapsed), gap after 1",
                         "layer 3 (collapsed), gap after 1"]
    crosses = [line for line in ax_sv.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
    assert [line.get_xdata()[0] for line in crosses] == [1.5] * len(LAYERS)
    assert "epoch 10" in texts and "layer of collapse (2)" in texts
    drawn = [line for line in ax_sv.get_lines() if len(line.get_xdata()) == 5]      # one per layer, in order
    np.testing.assert_allclose(drawn[1].get_ydata(), [1 / (i + 1) for i in range(1, 6)])
    assert ax_sv.get_ylabel() and ax_cos.get_ylabel() == "AvCosPABS"


def test_overview_rows_mark_threshold_collapse_and_gap():
    log = pd.DataFrame(dict(epoch=[10, 20], lr=[0.1, 0.1], loss=[1.0, 0.5], train_acc=[0.8, 1.0], test_acc=[0.7, 0.9]))
    sv = np.r_[np.ones(2), 1e-3 * np.ones(4)]          # C = 3: a gap after σ_2 = C − 1
    spectra = pd.DataFrame([dict(epoch=20, layer=l, name=f"l{l}", index=i + 1, sv_rel=v / sv.sum())
                            for l in LAYERS for i, v in enumerate(sv)])
    fig = plots.plot_overview({"a": (log, table(), spectra), "b": (log, table(), spectra)}, "overview", num_classes=3)
    assert len(fig.axes) == 6
    ax_acc, ax_rel, ax_sv = fig.axes[:3]
    assert ax_acc.get_title() == "a: test 0.900"
    assert any(list(line.get_ydata()) == [0.2, 0.2] for line in ax_rel.get_lines())          # the threshold
    assert "collapse at" in ax_rel.get_title()
    assert [t.get_text() for t in ax_sv.get_legend().get_texts()][0].endswith("gap after 2")


def test_accuracy_marks_the_lr_decays():
    log = pd.DataFrame(dict(epoch=range(1, 7), lr=[0.1, 0.1, 0.01, 0.01, 0.001, 0.001], loss=np.linspace(1, 0.1, 6),
                            train_acc=[np.nan, 0.5, np.nan, 0.8, np.nan, 1.0],
                            test_acc=[np.nan, 0.4, np.nan, 0.7, np.nan, 0.8]))
    fig = plots.plot_accuracy(log)
    ax_acc, ax_loss = fig.axes
    decays = [line.get_xdata()[0] for line in ax_loss.get_lines() if line.get_linestyle() == ":"]
    assert decays == [3, 5]
    assert legend_texts(fig) == ["train", "test", "lr decay"]
    assert ax_loss.get_yscale() == "log" and "loss" in ax_loss.get_ylabel() and "accuracy" in ax_acc.get_ylabel()


def test_cluster_matrices_say_when_a_layer_has_no_cluster():
    full = pd.DataFrame([[1.0, 0.0], [0.25, 0.75]], columns=pd.Index([0, 1], name="class"),
                        index=pd.MultiIndex.from_tuples([(0, 5, 4), (1, 7, 4)], names=["label", "cluster", "size"]))
    empty = full.iloc[:0]
    fig = plots.plot_cluster_matrices({0: empty, 1: full}, collapse=1)
    ax0, ax1 = fig.axes[:2]
    assert [t.get_text() for t in ax0.texts] == ["no clusters of ≥ 3 points"]
    assert ax1.get_title() == "layer 1 (collapsed)" and ax1.title.get_color() == plots.COLLAPSE
    np.testing.assert_allclose(np.asarray(ax1.collections[0].get_array()).reshape(2, 2), full.to_numpy())
    assert ax1.get_xlabel() == "class" and ax1.get_ylabel().startswith("2 clusters")
    assert fig.axes[-1].get_ylabel() == "share of the cluster's points in the class"       # the colour bar


def test_umap_explains_every_colour():
    rng = np.random.default_rng(0)
    xy = {0: rng.normal(size=(6, 2)), 1: rng.normal(size=(6, 2))}
    fig = plots.plot_umap(xy, {0: np.array([0, 1, 2, 0, 1, -1]), 1: np.array([0, 1, 2, 0, 1, 2])})
    assert legend_texts(fig) == ["class 0", "class 1", "class 2", "excluded (cluster < 3 points)"]
    assert all(ax.get_xlabel() == "UMAP 1" and ax.get_ylabel() == "UMAP 2" for ax in fig.axes)
    induced = {0: np.array([1, 1, 2, 0, 1, -1]), 1: np.full(6, -1)}
    wrong = plots.plot_umap(xy, induced, kind="error", truth=np.array([0, 1, 2, 0, 1, 2]))
    assert legend_texts(wrong) == ["induced label right", "induced label wrong", "excluded (cluster < 3 points)"]
    assert [ax.texts[0].get_text() for ax in wrong.axes] == ["20.0% of labelled wrong", "all excluded"]


def test_pca_counts_components_to_the_level_in_the_legend():
    eig = {1: np.array([10.0, 1.0, 0.01, 0.001]), 2: np.array([1.0, 1.0, 1.0, 1.0])}
    spectrum = pd.DataFrame([dict(layer=l, component=k, eigenvalue=e[k], tail_share=1 - e[:k + 1].sum() / e.sum())
                             for l, e in eig.items() for k in range(4)])
    fig = plots.plot_pca(spectrum, collapse=2, level=0.01)
    assert legend_texts(fig) == ["layer 1: 2", "layer 2 (collapsed): 4"]
    (line,) = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == 4][:1]
    np.testing.assert_allclose(line.get_ydata(), eig[1] / eig[1].sum())
    assert fig.axes[1].get_ylabel() == "1 − cumulative explained variance"


def test_l1_and_neuron_panels_are_labelled_with_a_legend():
    spectrum = pd.DataFrame(dict(layer=1, component=range(4), corresponding_dim=[1.0, 2, 3, 4],
                                 random_l1=[1.0, 1, 1, 1]))
    fig = plots.plot_l1_dimensionality(spectrum)
    assert legend_texts(fig) == ["principal directions", "random orthonormal columns",
                                 "random direction: mean ± 2 std"]
    assert fig.axes[0].get_ylabel() == "π‖u‖₁² / 2"
    assert [t.get_text() for t in fig.axes[0].texts] == ["mean 2 (random 5)"]   # d = 4: 3 + π/2 ≈ 4.57
    neurons = pd.DataFrame(dict(layer=[1, 1, 2, 2], rank=[0, 1, 0, 1], neuron=[1, 0, 0, 1],
                                sparsity=[0.1, 0.9, 0.5, 1.0], mean=[1.0, 2.0, 3.0, np.nan], std=[0.1] * 4))
    fig = plots.plot_neuron_sparsity(neurons, collapse=2)
    assert len(fig.axes) == 4 and all(ax.get_ylabel() for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["layer 1", "layer 2 (collapsed)"]
    assert len(legend_texts(fig)) == 3


def test_pruning_figures_draw_the_known_curves_the_network_and_the_collapse_layer():
    heads = {"ncc": [0.5, 0.8, 0.9], "ridge": [0.6, 0.85, 0.9]}
    table = pd.DataFrame([dict(layer=l, head=h, accuracy=a) for h, accs in heads.items() for l, a in enumerate(accs)]
                         + [dict(layer=-1, head="network", accuracy=0.91)])
    ax = plots.plot_pruning_accuracy(table, collapse=2, title="t").axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["ridge (least squares)"].get_ydata(), heads["ridge"])
    assert lines["full network (0.910)"].get_ydata()[0] == pytest.approx(0.91)
    assert list(lines["layer of collapse"].get_xdata()) == [2, 2]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("cut at layer", "test accuracy")

    costs = pd.DataFrame(dict(layer=[0, 1, 2], params_frac=[0.0, 0.4, 1.0], macs_frac=[0.01, 0.5, 1.0]))
    speed = pd.DataFrame([dict(layer=l, batch=b, speedup=s) for b in (1, 256) for l, s in enumerate([4.0, 2.0, 1.0])])
    left, right = plots.plot_pruning_cost(costs, speed, collapse=1).axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["parameters", "multiply-adds", "layer of collapse"]
    assert {t.get_text() for t in right.get_legend().get_texts()} >= {"batch 1", "batch 256", "full network"}
    assert right.get_yscale() == "log" and right.get_ylabel() == "speed-up (full / cut)"

    rows = pd.DataFrame(dict(collapse_layer=[2, None], keeps_ncc=[1, 2], keeps_ridge=[None, 0]))
    ax = plots.plot_keep_vs_collapse(rows, num_layers=3).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "none"]
    assert ax.get_xlabel() == "layer of collapse"


def test_ticket_figures_draw_the_known_values_per_round_family_and_network():
    density = pd.DataFrame([dict(seed=s, round=r, family="ticket", layer=l, density=0.5 ** r * (1 + l) / 4 + 0.01 * s)
                            for s in (0, 1) for r in (0, 1, 2) for l in range(4)])
    ax = plots.plot_ticket_density(density, collapse=2, title="t").axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"round 1", "round 2", "layer of collapse"}           # round 0 keeps everything: not drawn
    np.testing.assert_allclose(lines["round 2"].get_ydata(), [0.25 * (1 + l) / 4 + 0.005 for l in range(4)])
    assert list(lines["layer of collapse"].get_xdata()) == [2, 2] and ax.get_yscale() == "log"

    accuracy = pd.DataFrame([dict(seed=0, family="ticket", round=r, accuracy=0.9 - 0.05 * r, params=10 ** (6 - r))
                             for r in range(3)] + [dict(seed=0, family="cut", round=-1, accuracy=0.85, params=5e5)])
    ax = plots.plot_ticket_accuracy(accuracy).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["IMP ticket"].get_xdata(), [1e6, 1e5, 1e4])
    np.testing.assert_allclose(lines["IMP ticket"].get_ydata(), [0.9, 0.85, 0.8])
    assert lines["cut at the collapse layer"].get_ydata()[0] == pytest.approx(0.85)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "nonzero parameters"
    full = pd.concat([accuracy, pd.DataFrame([dict(seed=0, family="dense", round=-1, accuracy=0.9, params=1e6)])])
    ax = plots.plot_ticket_accuracy(full, n_test=10_000).axes[0]
    band = next(p for p in ax.patches if p.get_label().startswith("full network ±"))
    low, high = band.get_path().get_extents(band.get_transform()).transformed(ax.transData.inverted()).intervaly
    assert (low, high) == pytest.approx((0.9 - 0.006, 0.9 + 0.006))      # 2 SE: 2 sqrt(0.9 * 0.1 / 10,000)

    nc = pd.DataFrame([dict(network=n, split="train", measure=M.NC1, layer=l, value=v * (l + 1))
                       for n, v in (("dense", 1.0), ("ticket, round 1", 2.0)) for l in range(3)]
                      + [dict(network="dense", split="test", measure=M.NC1, layer=0, value=99.0)])
    ax = plots.plot_ticket_nc1(nc, collapse=1).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["ticket, round 1"].get_ydata(), [2.0, 4.0, 6.0])
    np.testing.assert_allclose(lines["dense"].get_ydata(), [1.0, 2.0, 3.0])        # the test split is not drawn
    assert ax.get_yscale() == "log"

"""One function per thesis figure: seaborn draws the tidy tables of ``measure.py``, ``spectra.py``
and ``clustering.py``; every function returns the matplotlib Figure, ``save_figure`` writes it.

Conventions, the same in every figure (theme set once, below): where the x axis is the layer,
0 is the network input and the layer of collapse is a dashed bluish-green vertical line (the
thesis's "green line", 4.1); where layers are panels or a legend, collapsed layers are named
"(collapsed)" in that colour. Checkpoint epochs go from light (early) to dark (last). All
palettes are colour-blind safe: seaborn's "colorblind" (Okabe-Ito) for categories, "flare"
(epochs) and "mako_r" (layers) for ordered ones. An empty panel says why it is empty.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter

from . import metrics as M

sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.15,
              rc={"axes.grid": True, "grid.alpha": 0.35, "legend.frameon": False, "figure.dpi": 100})
CATEGORICAL = sns.color_palette("colorblind")
EPOCHS, LAYERS = "flare", "mako_r"
COLLAPSE = "#009E73"
COLLAPSE_LINE = dict(color=COLLAPSE, linestyle="--", linewidth=1.6)
NETWORK_LINE = dict(color="black", linestyle=":", linewidth=1.4)
EMPTY_CLUSTERS = "no clusters of ≥ {} points"

#: measure -> (panel title, y-axis label, log scale)
AXES = {
    M.REL_TRACE_W: ("relative within-class trace", "Tr Σ_W / (Tr Σ_W+Tr Σ_B)", False),
    M.NC1: ("NC1 (eq 2.18)", "Tr(Σ_W Σ_B⁺) / C", True),
    M.TRACE_W: ("within-class variance", "Tr Σ_W", True),
    M.TRACE_B: ("between-class variance", "Tr Σ_B", True),
    M.CDNV: ("class-distance normalised variance", "CDNV", True),
    M.NC2_COS_MEAN: ("NC2 equiangularity (eq 2.19)", "avg cos + 1/(C−1)", False),
    M.NC2_COS_STD: ("NC2 angle spread (eq 2.20)", "std cos(μ̃_c, μ̃_c′)", False),
    M.NC2_NORM_CV: ("NC2 equinorm (eq 2.21)", "std ‖μ̃_c‖ / avg ‖μ̃_c‖", False),
    M.NC3_AVCOS: ("NC3 weight/means alignment (eq 2.25)", "AvCosPABS", False),
    M.NCC_ACC: ("NC4 NCC accuracy", "nearest-class-centre acc.", False),
    M.NCC_AGREE: ("NC4 NCC agrees with network", "agreement", False),
}
NC1_PANELS = [(M.NC1, "train"), (M.REL_TRACE_W, "train"), (M.TRACE_W, "train"), (M.TRACE_B, "train"),
              (M.CDNV, "train")]
NC2_PANELS = [(M.NC2_COS_MEAN, "train"), (M.NC2_COS_STD, "train"), (M.NC2_NORM_CV, "train")]
NC4_PANELS = [(M.NCC_ACC, "train"), (M.NCC_ACC, "test"), (M.NCC_AGREE, "train")]
GRID_NC12 = [(M.REL_TRACE_W, "train"), (M.NC1, "train"), *NC2_PANELS]
GRID_NC34 = [(M.NC3_AVCOS, "train"), *NC4_PANELS]


def save_figure(fig: plt.Figure, name: str, folder: str | Path) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` and ``.pdf`` (a chapter passes its figures folder,
    ``session.setup``'s ``figures_dir``); returns the PNG's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(folder / f"{name}.{ext}", dpi=150 if ext == "png" else None, bbox_inches="tight")
    return folder / f"{name}.png"


def final_collapse_layer(metrics: pd.DataFrame, measure: str = M.COLLAPSE_MEASURE,
                         threshold: float = M.COLLAPSE_THRESHOLD) -> int | None:
    """Layer of collapse at the last measured epoch (train split)."""
    return M.collapse_layer(metrics[metrics["epoch"] == metrics["epoch"].max()], measure, threshold)


# Shared pieces ---------------------------------------------------------------------------------

def say_empty(ax: plt.Axes, message: str) -> None:
    """Write ``message`` in the middle of an axes that has nothing to draw."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.35")


def mark_collapse(ax: plt.Axes, layer: int | None) -> None:
    """The layer of collapse on a layer x axis: the one mark used everywhere."""
    if layer is not None:
        ax.axvline(layer, **COLLAPSE_LINE, label="layer of collapse")


def collapse_handle(layer: int | None) -> Line2D:
    return Line2D([], [], **COLLAPSE_LINE, label=f"layer of collapse ({'none' if layer is None else layer})")


def layer_label(layer: int, collapse: int | None) -> str:
    return f"layer {layer}" + (" (collapsed)" if collapse is not None and layer >= collapse else "")


def epoch_palette(epochs) -> dict:
    epochs = sorted(set(epochs))
    return dict(zip(epochs, sns.color_palette(EPOCHS, len(epochs))))


def label_epoch_lines(ax: plt.Axes, palette: dict) -> None:
    """Name each line seaborn drew for an epoch "epoch N" (found by its colour), for inspection."""
    names = {tuple(np.round(c, 6)): f"epoch {e}" for e, c in palette.items()}
    for line in ax.get_lines():
        name = names.get(tuple(np.round(mcolors.to_rgb(line.get_color()), 6)))
        if name:
            line.set_label(name)


def epoch_handles(palette: dict) -> list[Line2D]:
    return [Line2D([], [], color=c, marker="o", markersize=4, label=f"epoch {e}") for e, c in palette.items()]


def _layer_panels(layers: list[int], collapse: int | None, ncols: int = 4, size: float = 2.6, rows_per: int = 1,
                  height_ratios: list[float] | None = None):
    """One titled cell per layer (``rows_per`` stacked axes each), collapsed layers titled in green;
    returns the figure and, per layer, its list of axes."""
    ncols = min(ncols, len(layers))
    nrows = -(-len(layers) // ncols)
    fig, grid = plt.subplots(nrows * rows_per, ncols, figsize=(size * ncols, size * nrows), squeeze=False,
                             layout="constrained", height_ratios=(height_ratios or [1] * rows_per) * nrows)
    cells = [[grid[r * rows_per + k, c] for k in range(rows_per)] for r in range(nrows) for c in range(ncols)]
    for cell, layer in zip(cells, layers):
        post = collapse is not None and layer >= collapse
        cell[0].set_title(layer_label(layer, collapse), color=COLLAPSE if post else "black")
    for cell in cells[len(layers):]:
        for ax in cell:
            ax.remove()
    return fig, cells[:len(layers)]


# Measures per layer (thesis 4.1, appendix B) ----------------------------------------------------

def _panel_name(measure: str, split: str) -> str:
    return AXES[measure][0] + (f" ({split})" if split != "train" else "")


def _per_layer(data: pd.DataFrame, panels: list[tuple[str, str]], collapse: dict, title: str, *,
               row: str | None = None, col_wrap: int | None = None, threshold: float | None = None,
               network: pd.DataFrame | None = None) -> plt.Figure:
    """relplot of the tidy metrics ``data`` (one per layer and epoch): x = layer, hue = epoch, one
    column per (measure, split) panel, one row per value of ``row``; ``collapse``: row value ->
    layer of collapse (key None without rows); ``network``: net_acc rows drawn as horizontal lines."""
    names = [_panel_name(*p) for p in panels]
    frames = [data[(data["measure"] == m) & (data["split"] == s) & (data["layer"] >= 0)].assign(panel=n)
              for (m, s), n in zip(panels, names)]
    data = pd.concat(frames, ignore_index=True)
    palette = epoch_palette(data["epoch"])
    g = sns.relplot(data, x="layer", y="value", hue="epoch", palette=palette, col="panel", col_order=names,
                    row=row, col_wrap=col_wrap, kind="line", marker="o", markersize=4, markeredgewidth=0,
                    estimator=None, errorbar=None, legend=False, height=2.6, aspect=1.2,
                    facet_kws=dict(sharey=False, margin_titles=row is not None))
    g.set_titles(col_template="{col_name}", row_template="{row_name}")
    extra = {}
    for key, ax in g.axes_dict.items():
        row_name, name = key if row else (None, key)
        (measure, split) = panels[names.index(name)]
        ax.set_ylabel(AXES[measure][1])
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        label_epoch_lines(ax, palette)
        if AXES[measure][2]:
            ax.set_yscale("log")
        shown = data[(data["panel"] == name) & ((data[row] == row_name) if row else True)]
        if shown.empty:
            say_empty(ax, "not measured")
        if measure == M.REL_TRACE_W and threshold is not None:
            ax.axhline(threshold, color="0.4", linewidth=1)
            extra["collapse threshold"] = Line2D([], [], color="0.4", linewidth=1)
        if network is not None and measure == M.NCC_ACC:
            net = network[(network["split"] == split) & ((network[row] == row_name) if row else True)]
            if len(net):
                ax.axhline(net["value"].iloc[-1], **NETWORK_LINE)
                extra["network accuracy (last epoch)"] = Line2D([], [], **NETWORK_LINE)
        mark_collapse(ax, collapse.get(row_name))
    handles = epoch_handles(palette) + [collapse_handle(collapse[None]) if row is None else
                                        Line2D([], [], **COLLAPSE_LINE, label="layer of collapse")]
    g.add_legend(legend_data={h.get_label(): h for h in handles} | extra)
    g.figure.suptitle(title, fontweight="bold")
    g.tight_layout()
    return g.figure


def plot_nc1(metrics: pd.DataFrame, title: str = "", collapse: int | None = None,
             threshold: float = M.COLLAPSE_THRESHOLD) -> plt.Figure:
    """NC1 per layer over epochs (thesis Fig 4.1.1, 4.1.5): NC1, relative within-class trace (with the
    collapse threshold), within- and between-class traces, CDNV."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    return _per_layer(metrics, NC1_PANELS, {None: collapse}, title, col_wrap=3, threshold=threshold)


def plot_nc2(metrics: pd.DataFrame, title: str = "", collapse: int | None = None) -> plt.Figure:
    """The three NC2 measures per layer over epochs (thesis Fig 4.1.2, 4.1.6; eqs 2.19-2.21)."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    return _per_layer(metrics, NC2_PANELS, {None: collapse}, title)


def plot_nc4(metrics: pd.DataFrame, title: str = "", collapse: int | None = None) -> plt.Figure:
    """NC4 (thesis Fig 4.1.4): NCC accuracy per layer (train, test) with the network's last-epoch
    accuracy as a dotted line, and the NCC/network agreement."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    network = metrics[(metrics["measure"] == M.NET_ACC) & (metrics["epoch"] == metrics["epoch"].max())]
    return _per_layer(metrics, NC4_PANELS, {None: collapse}, title, network=network)


def plot_grid(tables: dict[str, pd.DataFrame], panels: list[tuple[str, str]] = GRID_NC12, title: str = "",
              collapse: dict[str, int | None] | None = None,
              threshold: float = M.COLLAPSE_THRESHOLD) -> plt.Figure:
    """Appendix B layout: one row per experiment (label -> metrics table), one column per
    (measure, split) panel, each the measure per layer at every epoch with the collapse layer."""
    collapse = collapse or {label: final_collapse_layer(m) for label, m in tables.items()}
    data = pd.concat([m.assign(experiment=label) for label, m in tables.items()], ignore_index=True)
    last = data.groupby("experiment")["epoch"].transform("max")
    network = data[(data["measure"] == M.NET_ACC) & (data["epoch"] == last)]
    return _per_layer(data, panels, collapse, title, row="experiment", threshold=threshold, network=network)


def _singular_values(ax: plt.Axes, spectra: pd.DataFrame, collapse: int | None, num_classes: int,
                     legend: bool = True) -> None:
    """σ_i/Σσ of each layer's weight (one epoch's ``spectra``), first C shaded, 1/C dotted, and each
    weight's spectral gap (largest σ_i/σ_(i+1) among the leading 2C, chapter 1's claims) as a cross,
    named in the legend ("gap after i")."""
    from .claims.chapter1 import GAP_SEARCH, spectral_gap
    curves = {layer: g.sort_values("index")["sv_rel"].to_numpy() for layer, g in spectra.groupby("layer")}
    gaps = {layer: spectral_gap(v[:GAP_SEARCH * num_classes + 1]) for layer, v in curves.items() if len(v) > num_classes}
    name = lambda l: layer_label(l, collapse) + (f", gap after {gaps[l]}" if l in gaps else "")
    colours = dict(zip(curves, sns.color_palette(LAYERS, len(curves))))
    for layer, v in curves.items():
        ax.plot(np.arange(1, len(v) + 1), v, marker="o", markersize=3, markeredgewidth=0, color=colours[layer],
                label=name(layer))
        if layer in gaps:
            ax.plot(gaps[layer] + 0.5, np.sqrt(v[gaps[layer] - 1] * v[gaps[layer]]), marker="x", markersize=7,
                    color=colours[layer], linestyle="none")
    ax.axvspan(0.5, num_classes + 0.5, color="0.5", alpha=0.12, label=f"first C = {num_classes}")
    ax.axhline(1 / num_classes, color="0.3", linewidth=1, linestyle=":", label="1/C")
    ax.plot([], [], marker="x", color="0.3", linestyle="none", label="spectral gap (largest σ_i/σ_(i+1), i ≤ 2C)")
    ax.set(xlabel="singular value index i", ylabel="σ_i / Σ_j σ_j", yscale="log")
    if legend:
        ax.legend(title="weight acting on", fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))


def plot_nc3(metrics: pd.DataFrame, spectra: pd.DataFrame, title: str = "", num_classes: int = 10,
             collapse: int | None = None, top: int = 30) -> plt.Figure:
    """NC3 (thesis Fig 4.1.3, 4.1.7): relative singular values σ_i/Σσ of each layer's weight at the
    last epoch (first C shaded, 1/C dotted), and AvCosPABS per layer over epochs."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    fig, (ax_sv, ax_cos) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=[1.5, 1], layout="constrained")
    last = spectra[(spectra["epoch"] == spectra["epoch"].max()) & (spectra["index"] <= top)]
    _singular_values(ax_sv, last, collapse, num_classes)
    ax_sv.set_title(f"relative singular values of each layer's weight (top {top}, last epoch)")
    rows = metrics[(metrics["measure"] == M.NC3_AVCOS) & (metrics["split"] == "train") & (metrics["layer"] >= 0)]
    palette = epoch_palette(rows["epoch"])
    sns.lineplot(rows, x="layer", y="value", hue="epoch", palette=palette, marker="o", markersize=4,
                 markeredgewidth=0, estimator=None, legend=False, ax=ax_cos)
    label_epoch_lines(ax_cos, palette)
    mark_collapse(ax_cos, collapse)
    ax_cos.set(xlabel="layer", ylabel=AXES[M.NC3_AVCOS][1], ylim=(0, 1.05), title=AXES[M.NC3_AVCOS][0])
    ax_cos.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_cos.legend(handles=epoch_handles(palette) + [collapse_handle(collapse)], fontsize=7, loc="lower right")
    fig.suptitle(title, fontweight="bold")
    return fig


def plot_overview(experiments: dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]], title: str = "",
                  measure: str = M.REL_TRACE_W, threshold: float = 0.2, num_classes: int = 10) -> plt.Figure:
    """Appendix B per dataset, one row per experiment (label -> (training log, metrics, spectra)):
    train/test accuracy over epochs; the relative within-class trace per layer at the last epoch
    with the threshold and the layer of collapse; the relative singular values of each weight at
    the last epoch with the first C, 1/C and each weight's spectral gap marked."""
    fig, axes = plt.subplots(len(experiments), 3, figsize=(15, 3.4 * len(experiments)), squeeze=False,
                             width_ratios=[1, 1, 1.6], layout="constrained")
    for (label, (log, metrics, spectra)), (ax_acc, ax_rel, ax_sv) in zip(experiments.items(), axes):
        final = metrics[metrics["epoch"] == metrics["epoch"].max()]
        collapse = M.collapse_layer(final, measure, threshold)
        acc = log.dropna(subset=["test_acc"])
        for column, colour in (("train_acc", CATEGORICAL[0]), ("test_acc", CATEGORICAL[1])):
            ax_acc.plot(acc["epoch"], acc[column], color=colour, label=column.removesuffix("_acc"))
        ax_acc.set(xlabel="epoch", ylabel="accuracy (eval mode)", ylim=(0, 1.02),
                   title=f"{label}: test {acc['test_acc'].iloc[-1]:.3f}")
        ax_acc.legend(loc="lower right", fontsize=7)
        rel = final[(final["measure"] == measure) & (final["split"] == "train") & (final["layer"] >= 0)]
        ax_rel.plot(rel["layer"], rel["value"], marker="o", color=CATEGORICAL[2])
        ax_rel.axhline(threshold, color="0.4", linewidth=1, label=f"threshold {threshold:g}")
        mark_collapse(ax_rel, collapse)
        ax_rel.set(xlabel="layer", ylabel=AXES[measure][1], yscale="log",
                   title=f"{AXES[measure][0]}, collapse at {'none' if collapse is None else collapse}")
        ax_rel.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_rel.legend(handles=[Line2D([], [], color="0.4", linewidth=1, label=f"threshold {threshold:g}"),
                               collapse_handle(collapse)], fontsize=7, loc="lower left")
        _singular_values(ax_sv, spectra[spectra["epoch"] == spectra["epoch"].max()], collapse, num_classes)
        ax_sv.set_title("relative singular values of each weight (last epoch)")
    fig.suptitle(title, fontweight="bold")
    return fig


def plot_accuracy(log: pd.DataFrame, title: str = "") -> plt.Figure:
    """Train and test accuracy (eval mode) and the training loss over epochs, lr decays marked."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    acc = log.dropna(subset=["test_acc"]).melt("epoch", ["train_acc", "test_acc"], var_name="split")
    acc["split"] = acc["split"].str.removesuffix("_acc")
    sns.lineplot(acc, x="epoch", y="value", hue="split", ax=ax_acc)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (eval mode)", ylim=(0, 1.02), title="accuracy")
    sns.lineplot(log, x="epoch", y="loss", color=CATEGORICAL[2], ax=ax_loss)
    ax_loss.set(xlabel="epoch", ylabel="training loss (MSE, train mode)", yscale="log", title="training loss")
    decays = log["epoch"][log["lr"].diff() < 0]
    for ax in (ax_acc, ax_loss):
        for epoch in decays:
            ax.axvline(epoch, color="0.5", linestyle=":", linewidth=1)
    handles = ax_acc.get_legend().legend_handles + [Line2D([], [], color="0.5", linestyle=":", label="lr decay")]
    ax_acc.legend(handles=handles, labels=["train", "test", "lr decay"], loc="lower right")
    fig.suptitle(title, fontweight="bold")
    return fig


# Collapse and generalization (thesis 4.2, appendix C.1) ------------------------------------------

def plot_collapse_vs_error(summary: pd.DataFrame, num_layers: int, title: str = "") -> plt.Figure:
    """Thesis Fig 4.2.1: layer of collapse against test error, colour = learning rate, marker =
    weight decay; seeds are jittered sideways so each stays visible. Runs that never collapse
    are drawn at x = ``num_layers`` (labelled "none")."""
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    layer = pd.to_numeric(summary["collapse_layer"], errors="coerce").fillna(num_layers)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(summary))
    data = pd.DataFrame({"layer": layer.to_numpy(float) + jitter, "error": 1 - summary["test_acc"].to_numpy(),
                         "learning rate": summary["lr"].map("{:g}".format).to_numpy(),
                         "weight decay": summary["weight_decay"].map("{:g}".format).to_numpy()})
    if data.empty:
        say_empty(ax, "no run passed the accuracy floor")
    else:
        sns.scatterplot(data, x="layer", y="error", hue="learning rate", style="weight decay", s=50,
                        edgecolor="black", linewidth=0.4, ax=ax,
                        hue_order=sorted(data["learning rate"].unique(), key=float),
                        style_order=sorted(data["weight decay"].unique(), key=float))
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1))
    ax.set_xticks(range(num_layers + 1), [*map(str, range(num_layers)), "none"])
    ax.set(xlim=(-0.5, num_layers + 0.5), xlabel="layer of collapse", ylabel="test error", title=title)
    return fig


# Clustering (thesis 4.3, appendix C.2) ---------------------------------------------------------

def plot_umap(embeddings: dict[int, np.ndarray], colors: dict[int, np.ndarray] | np.ndarray, title: str = "",
              collapse: int | None = None, kind: str = "class", truth: np.ndarray | None = None) -> plt.Figure:
    """UMAP panels per layer (thesis Fig 4.3.1, C.2.3, C.2.4). ``colors``: per point, a class or an
    induced label, -1 for points excluded from the clustering's labels (grey). ``kind="error"``
    colours instead whether the label differs from ``truth`` (the true classes), wrong on top."""
    layers = sorted(embeddings)
    fig, cells = _layer_panels(layers, collapse)
    per_layer = {layer: np.asarray(colors[layer] if isinstance(colors, dict) else colors) for layer in layers}
    if kind == "error":
        per_layer = {layer: np.where(c < 0, -1, c != truth) for layer, c in per_layer.items()}
    if kind == "error":
        palette = {0: "#a6bddb", 1: CATEGORICAL[3], -1: "0.8"}
        names = {0: "induced label right", 1: "induced label wrong", -1: "excluded (cluster < 3 points)"}
    else:
        classes = sorted({int(c) for c in np.concatenate(list(per_layer.values())) if c >= 0})
        palette = {c: CATEGORICAL[i % len(CATEGORICAL)] for i, c in enumerate(classes)} | {-1: "0.8"}
        names = {c: f"class {c}" for c in classes} | {-1: "excluded (cluster < 3 points)"}
    for (ax,), layer in zip(cells, layers):
        xy, c = embeddings[layer], per_layer[layer].astype(int)
        order = np.argsort(c, kind="stable") if kind == "error" else np.arange(len(c))
        sns.scatterplot(x=xy[order, 0], y=xy[order, 1], hue=c[order], palette=palette, s=3, linewidth=0,
                        legend=False, rasterized=True, ax=ax)
        ax.set(xticks=[], yticks=[], xlabel="UMAP 1", ylabel="UMAP 2")
        if kind == "error":
            kept = c >= 0
            ax.text(0.02, 0.02, f"{c[kept].mean():.1%} of labelled wrong" if kept.any() else "all excluded",
                    transform=ax.transAxes, fontsize=8)
    shown = [k for k in palette if any((per_layer[layer] == k).any() for layer in layers)]
    fig.legend(handles=[Line2D([], [], marker="o", linestyle="", color=palette[k], label=names[k]) for k in shown],
               loc="outside right center", title="colour")
    fig.suptitle(title, fontweight="bold")
    return fig


def plot_cluster_matrices(matrices: dict[int, pd.DataFrame], title: str = "", collapse: int | None = None,
                          max_rows: int = 200, min_size: int = 3) -> plt.Figure:
    """Cluster-by-class heatmaps per layer (thesis Fig 4.3.2, C.2.5): rows = clusters of at least
    ``min_size`` points ordered by label then size, columns = classes, colour = share of the
    cluster's points in that class. Layers with more than ``max_rows`` clusters show the largest."""
    layers = sorted(matrices)
    fig, cells = _layer_panels(layers, collapse)
    for (ax,), layer in zip(cells, layers):
        m = matrices[layer]
        if m.empty:
            say_empty(ax, EMPTY_CLUSTERS.format(min_size))
            ax.set(xticks=[], yticks=[])
        else:
            shown = m if len(m) <= max_rows else m.iloc[m.index.get_level_values("size").argsort()[::-1][:max_rows]] \
                .sort_index(level=0, sort_remaining=False, kind="stable")
            sns.heatmap(shown.to_numpy(), cmap="Blues", vmin=0, vmax=1,
                        cbar=False, xticklabels=list(m.columns), yticklabels=False, ax=ax, rasterized=True)
        ax.set(xlabel="class", ylabel=f"{len(m)} clusters (by label, size)")
    fig.colorbar(plt.cm.ScalarMappable(plt.Normalize(0, 1), "Blues"), ax=[c[0] for c in cells], shrink=0.6,
                 label="share of the cluster's points in the class")
    fig.suptitle(title, fontweight="bold")
    return fig


# PCA and sparsity (thesis 4.4, appendix C.2) ---------------------------------------------------

def plot_pca(spectrum: pd.DataFrame, title: str = "", collapse: int | None = None,
             level: float = 0.01) -> plt.Figure:
    """Thesis Fig 4.4.1: (a) eigenvalues of each layer's activation covariance as shares of the total
    variance, (b) 1 − cumulative explained variance, where each layer passes ``level`` marked and
    counted in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    data = spectrum.assign(component=spectrum["component"] + 1, tail_share=spectrum["tail_share"].clip(lower=1e-12),
                           share=spectrum["eigenvalue"] / spectrum.groupby("layer")["eigenvalue"].transform("sum"))
    crossing = data[data["tail_share"] < level].groupby("layer")["component"].min()
    names = {layer: layer_label(layer, collapse) + (f": {crossing[layer]}" if layer in crossing else "")
             for layer in sorted(data["layer"].unique())}
    palette = dict(zip(names.values(), sns.color_palette(LAYERS, len(names))))
    data["layer"] = data["layer"].map(names)
    for ax, y, ylabel in ((axes[0], "share", "eigenvalue / total variance"),
                          (axes[1], "tail_share", "1 − cumulative explained variance")):
        sns.lineplot(data, x="component", y=y, hue="layer", palette=palette, estimator=None, legend=False, ax=ax)
        ax.set(xscale="log", yscale="log", xlabel="principal component", ylabel=ylabel)
    axes[0].set_title("(a) PCA spectrum")
    axes[1].set_title(f"(b) unexplained variance, < {level:g} marked")
    axes[1].axhline(level, color="0.4", linewidth=1, linestyle=":")
    for layer, component in crossing.items():
        axes[1].plot(component, level, marker="o", color=palette[names[layer]])
    fig.legend(handles=[Line2D([], [], color=c, label=n) for n, c in palette.items()], loc="outside right center",
               title=f"layer: components to < {level:g}")
    fig.suptitle(title, fontweight="bold")
    return fig


def plot_l1_dimensionality(spectrum: pd.DataFrame, title: str = "", collapse: int | None = None,
                           top: int | None = None, leading: pd.DataFrame | None = None, z: float = 2.0) -> plt.Figure:
    """Thesis Fig 4.4.2, C.2.7-C.2.8 (lower): corresponding dimensionality π‖u‖₁²/2 of every principal
    direction per layer (the first ``top`` when given), the columns of one random orthonormal matrix,
    and the band mean ± ``z`` std of a random unit direction (exact, ``spectra.random_direction_dimensionality``).
    ``leading`` (``spectra.leading_direction_table``) adds the leading direction of the uncentred
    data at component 1. Each panel names the mean over its directions and the random mean."""
    from .spectra import random_direction_dimensionality
    layers = sorted(spectrum["layer"].unique())
    fig, cells = _layer_panels(layers, collapse)
    colors = {"principal directions": CATEGORICAL[0], "random orthonormal columns": "0.55"}
    band = "random direction: mean ± {:g} std".format(z)
    for (ax,), layer in zip(cells, layers):
        rows = spectrum[spectrum["layer"] == layer]
        mean, sd = random_direction_dimensionality(len(rows))
        if top is not None:
            rows = rows[rows["component"] < top]
        data = pd.DataFrame({"component": rows["component"] + 1, "principal directions": rows["corresponding_dim"],
                             "random orthonormal columns": np.pi * rows["random_l1"] ** 2 / 2})
        ax.axhspan(mean - z * sd, mean + z * sd, color="0.85", linewidth=0)
        sns.lineplot(data.melt("component", var_name="direction"), x="component", y="value", hue="direction",
                     palette=colors, estimator=None, legend=False, linewidth=0.9, ax=ax)
        if leading is not None and layer in set(leading["layer"]):
            ax.plot(1, leading.set_index("layer").loc[layer, "leading_dim"], marker="*", color=CATEGORICAL[3],
                    markersize=9, linestyle="")
        ax.text(0.03, 0.04, f"mean {rows['corresponding_dim'].mean():.0f} (random {mean:.0f})", transform=ax.transAxes,
                fontsize=8)
        ax.set(xlabel="principal component", ylabel="π‖u‖₁² / 2", ylim=(0, None))
    handles = [Line2D([], [], color=c, label=n) for n, c in colors.items()] + [Patch(color="0.85", label=band)]
    if leading is not None:
        handles.append(Line2D([], [], marker="*", color=CATEGORICAL[3], linestyle="", label="leading uncentred direction"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), title="corresponding dimensionality of")
    fig.suptitle(title, fontweight="bold")
    return fig


def plot_neuron_sparsity(neurons: pd.DataFrame, title: str = "", collapse: int | None = None,
                         num_classes: int | None = None) -> plt.Figure:
    """Thesis Figs 4.4.3-4.4.4, C.2.9-C.2.10: per layer, neurons sorted by sparsity (share of exact
    zeros, top; with ``num_classes``, dotted lines at the steps k/C of C.2.4) and, in the same order,
    the mean ± std of their non-zero activations on a log axis (bottom). Each panel names its mean
    sparsity and its dead / always-on neurons."""
    layers = sorted(neurons["layer"].unique())
    fig, cells = _layer_panels(layers, collapse, size=3.0, rows_per=2, height_ratios=[1, 1.6])
    sparse, mean = CATEGORICAL[3], CATEGORICAL[0]
    for (ax_s, ax_m), layer in zip(cells, layers):
        rows = neurons[neurons["layer"] == layer]
        for k in range(1, num_classes or 0):
            ax_s.axhline(k / num_classes, color="0.85", linewidth=0.6, linestyle=":")
        sns.lineplot(rows, x="rank", y="sparsity", color=sparse, estimator=None, ax=ax_s)
        ax_s.set(ylim=(-0.02, 1.02), xlabel="", ylabel="share of zeros")
        ax_s.text(0.03, 0.8, f"mean {rows['sparsity'].mean():.2f}; dead {int((rows['sparsity'] == 1).sum())}, "
                  f"always on {int((rows['sparsity'] == 0).sum())}", transform=ax_s.transAxes, fontsize=7)
        low = (rows["mean"] - rows["std"]).clip(lower=rows["mean"] / 10)      # a log axis cannot show <= 0
        ax_m.fill_between(rows["rank"], low, rows["mean"] + rows["std"], color=mean, alpha=0.25, linewidth=0)
        sns.lineplot(rows, x="rank", y="mean", color=mean, estimator=None, ax=ax_m)
        ax_m.set(xlabel="neuron, sorted by sparsity", ylabel="non-zero activation", yscale="log")
        ax_m.yaxis.set_minor_formatter(NullFormatter())
        ax_s.sharex(ax_m)
        ax_s.tick_params(labelbottom=False)
    fig.legend(handles=[Line2D([], [], color=sparse, label="share of points where the neuron is 0"),
                        Line2D([], [], color=mean, label="mean of its non-zero activations (log axis)"),
                        Patch(color=mean, alpha=0.25, label="± 1 std of them")], loc="outside lower center", ncol=3)
    fig.suptitle(title, fontweight="bold")
    return fig


# Chapter 5: cutting the network ------------------------------------------------------------------

HEAD_LABELS = {"ncc": "nearest class centre", "ridge": "ridge (least squares)"}


def plot_pruning_accuracy(table: pd.DataFrame, collapse: int | None = None, title: str = "") -> plt.Figure:
    """Test accuracy of the network cut at each layer with each closed-form head
    (``prune.layer_table``), the full network's as a horizontal line, the layer of collapse marked."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for head, rows in table[table["layer"] >= 0].groupby("head"):
        ax.plot(rows["layer"], rows["accuracy"], marker="o", markersize=4, label=HEAD_LABELS.get(head, head))
    net = table.loc[table["head"] == "network", "accuracy"].item()
    ax.axhline(net, **NETWORK_LINE, label=f"full network ({net:.3f})")
    mark_collapse(ax, collapse)
    ax.set_xticks(sorted(table.loc[table["layer"] >= 0, "layer"].unique()))
    ax.set(xlabel="cut at layer", ylabel="test accuracy", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pruning_cost(costs: pd.DataFrame, speed: pd.DataFrame, collapse: int | None = None,
                      title: str = "") -> plt.Figure:
    """Left: parameters and multiply-adds kept, as fractions of the full network's (``costs``:
    ``prune.cost_table``). Right: measured speed-up against the full network per batch size
    (``speed``: ``prune.speed_table``), log scale."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for column, label in (("params_frac", "parameters"), ("macs_frac", "multiply-adds")):
        left.plot(costs["layer"], costs[column], marker="o", markersize=4, label=label)
    left.set(xlabel="cut at layer", ylabel="fraction of the full network", ylim=(0, 1.05), title="cost kept")
    for batch, rows in speed[speed["layer"] >= 0].groupby("batch"):
        right.plot(rows["layer"], rows["speedup"], marker="o", markersize=4, label=f"batch {batch}")
    right.axhline(1, **NETWORK_LINE, label="full network")
    right.set(xlabel="cut at layer", ylabel="speed-up (full / cut)", yscale="log", title="measured speed-up")
    for ax in (left, right):
        mark_collapse(ax, collapse)
        ax.set_xticks(sorted(costs["layer"]))
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_keep_vs_collapse(rows: pd.DataFrame, num_layers: int, title: str = "") -> plt.Figure:
    """Earliest layer that keeps the full accuracy (``keeps_<head>`` columns) against the layer of
    collapse, one point per run (jittered); "none" (x or y = ``num_layers``) = never."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    rng = np.random.default_rng(0)
    for column, marker in (("keeps_ncc", "s"), ("keeps_ridge", "o")):
        x = pd.to_numeric(rows["collapse_layer"], errors="coerce").fillna(num_layers).to_numpy(float)
        y = pd.to_numeric(rows[column], errors="coerce").fillna(num_layers).to_numpy(float)
        ax.scatter(x + rng.uniform(-0.12, 0.12, len(x)), y + rng.uniform(-0.12, 0.12, len(y)), marker=marker,
                   alpha=0.7, edgecolor="black", linewidth=0.4, label=HEAD_LABELS[column.split("_")[1]])
    ticks = [*map(str, range(num_layers)), "none"]
    ax.plot([0, num_layers], [0, num_layers], color="gray", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(num_layers + 1), ticks)
    ax.set_yticks(range(num_layers + 1), ticks)
    ax.set(xlabel="layer of collapse", ylabel="earliest layer keeping the accuracy", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# Chapter 6: lottery tickets ---------------------------------------------------------------------

def plot_ticket_density(density: pd.DataFrame, collapse: int | None = None, title: str = "") -> plt.Figure:
    """Share of each weight layer's weights kept by the ticket of each IMP round (``density``:
    ``ticket_measures.density_table`` of the magnitude tickets; mean over seeds), layer of collapse
    marked. x: the probe layer the weights read (0 = the input layer's weights)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    rows = density[density["round"] > 0].groupby(["round", "layer"], as_index=False)["density"].mean()
    colours = sns.color_palette(EPOCHS, rows["round"].nunique())
    for colour, (rnd, part) in zip(colours, rows.groupby("round")):
        ax.plot(part["layer"], part["density"], marker="o", markersize=4, color=colour, label=f"round {rnd}")
    mark_collapse(ax, collapse)
    ax.set_yscale("log")
    ax.set_xticks(sorted(rows["layer"].unique()))
    ax.set(xlabel="weights reading layer", ylabel="share of weights kept", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


TICKET_FAMILIES = {"dense": "full network", "ticket": "IMP ticket", "random": "random mask (control)",
                   "cut": "cut at the collapse layer", "ticket cut": "ticket cut at the collapse layer",
                   "shallow": "as deep as the collapse layer, from scratch"}


def plot_ticket_accuracy(accuracy: pd.DataFrame, title: str = "", n_test: int | None = None,
                         z: float = 2.0) -> plt.Figure:
    """Test accuracy against nonzero parameters (log scale) of each family of networks (``accuracy``:
    columns ``seed, family, round, accuracy, params``; rounds of a family joined by a line, one
    marker per seed). With ``n_test`` (test-set size), a grey band marks the full network's mean
    accuracy ± ``z`` binomial standard errors: the noise the chapter's claims judge against. The full
    network is drawn last, as a black-edged diamond, so no family hides it."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    families = {**{f: l for f, l in TICKET_FAMILIES.items() if f != "dense"}, "dense": TICKET_FAMILIES["dense"]}
    colours = dict(zip(TICKET_FAMILIES, CATEGORICAL))
    for family, label in families.items():
        rows = accuracy[accuracy["family"] == family]
        if rows.empty:
            continue
        mean = rows.groupby("round", as_index=False)[["params", "accuracy"]].mean()
        full = family == "dense"
        ax.plot(mean["params"], mean["accuracy"], marker="D" if full else "o", markersize=7 if full else 5,
                markeredgecolor="black" if full else colours[family], color=colours[family], label=label,
                linestyle="-" if len(mean) > 1 else "none", zorder=3 if full else 2)
        ax.scatter(rows["params"], rows["accuracy"], s=10, color=colours[family], alpha=0.5)
        if full and n_test:
            p = float(mean["accuracy"].mean())
            half = z * float(np.sqrt(p * (1 - p) / n_test))
            ax.axhspan(p - half, p + half, color="0.85", zorder=0, label=f"full network ± {z:g} binomial SE")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set(xlabel="nonzero parameters", ylabel="test accuracy", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_ticket_nc1(metrics: pd.DataFrame, collapse: int | None = None, title: str = "",
                    measure: str = M.NC1) -> plt.Figure:
    """NC1 (or ``measure``) per layer of the dense network (black) and of each round's ticket, train
    split (``metrics``: ``measure_run`` tables with a ``network`` column naming each line; seeds averaged)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    rows = metrics[(metrics["measure"] == measure) & (metrics["split"] == "train") & (metrics["layer"] >= 0)]
    networks = list(dict.fromkeys(rows["network"]))
    colours = sns.color_palette(EPOCHS, len(networks))
    for colour, network in zip(colours, networks):
        colour = "black" if network == "dense" else colour
        part = rows[rows["network"] == network].groupby("layer")["value"].mean()
        ax.plot(part.index, part.values, marker="o", markersize=4, color=colour, label=network)
    mark_collapse(ax, collapse)
    name, ylabel, log = AXES[measure]
    if log:
        ax.set_yscale("log")
    ax.set_xticks(sorted(rows["layer"].unique()))
    ax.set(xlabel="layer", ylabel=ylabel, title=title or name)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

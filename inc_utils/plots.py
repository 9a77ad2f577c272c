"""One function per thesis figure, each taking the tidy tables of ``measure.py`` / ``train.py``.

Conventions: x = layer (0 = network input), one line per checkpoint epoch coloured from
light (early) to dark (last), the layer of collapse as a dashed green vertical line
(thesis 4.1, "green line"). Every function returns the matplotlib Figure; ``save_figure``
writes it as PNG and PDF.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import metrics as M

COLLAPSE_STYLE = dict(color="tab:green", linestyle="--", linewidth=1.5, label="layer of collapse")


def save_figure(fig: plt.Figure, name: str, folder: str | Path | None = None) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` and ``.pdf``; folder: ``$INC_FIGURES_DIR`` or ``figures/``."""
    folder = Path(folder or os.environ.get("INC_FIGURES_DIR", "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(folder / f"{name}.{ext}", dpi=150 if ext == "png" else None, bbox_inches="tight")
    return folder / f"{name}.png"


def _measure(metrics: pd.DataFrame, measure: str, split: str = "train") -> pd.DataFrame:
    """layer x epoch table of one measure."""
    rows = metrics[(metrics["measure"] == measure) & (metrics["split"] == split) & (metrics["layer"] >= 0)]
    return rows.pivot_table(index="layer", columns="epoch", values="value")


def _epoch_lines(ax, table: pd.DataFrame, log: bool = False, cmap: str = "viridis_r") -> None:
    colors = plt.get_cmap(cmap)(np.linspace(0.15, 1.0, table.shape[1]))
    for color, epoch in zip(colors, table.columns):
        ax.plot(table.index, table[epoch], marker="o", markersize=3, color=color, label=f"epoch {epoch}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_xticks(table.index)


def _mark_collapse(ax, layer: int | None) -> None:
    if layer is not None:
        ax.axvline(layer, **COLLAPSE_STYLE)


def _panels(titles: list[str], ncols: int | None = None, size: float = 3.6):
    ncols = ncols or len(titles)
    nrows = -(-len(titles) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, 3.0 * nrows), squeeze=False)
    for ax, title in zip(axes.flat, titles):
        ax.set_title(title, fontsize=10)
    axes = list(axes.flat)
    for ax in axes[len(titles):]:
        ax.remove()
    return fig, axes[:len(titles)]


def final_collapse_layer(metrics: pd.DataFrame, measure: str = M.REL_TRACE_W, threshold: float = 0.2) -> int | None:
    """Layer of collapse at the last measured epoch (train split)."""
    last = metrics[metrics["epoch"] == metrics["epoch"].max()]
    return M.collapse_layer(last, measure, threshold)


def plot_nc1(metrics: pd.DataFrame, title: str = "", collapse: int | None = None) -> plt.Figure:
    """NC1 per layer over epochs (thesis Fig 4.1.1): NC1, relative within-class trace, traces, CDNV."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    fig, axes = _panels(["NC1  Tr(Σ_W Σ_B⁺)/C", "Tr Σ_W / (Tr Σ_W + Tr Σ_B)", "Tr Σ_W (solid), Tr Σ_B (dotted)",
                         "CDNV"])
    _epoch_lines(axes[0], _measure(metrics, M.NC1), log=True)
    _epoch_lines(axes[1], _measure(metrics, M.REL_TRACE_W))
    axes[1].axhline(0.2, color="grey", linewidth=0.8)
    _epoch_lines(axes[2], _measure(metrics, M.TRACE_W), log=True)
    trace_b = _measure(metrics, M.TRACE_B)
    for line, epoch in zip(axes[2].get_lines(), trace_b.columns):
        axes[2].plot(trace_b.index, trace_b[epoch], linestyle=":", color=line.get_color())
    _epoch_lines(axes[3], _measure(metrics, M.CDNV), log=True)
    for ax in axes:
        _mark_collapse(ax, collapse)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_nc2(metrics: pd.DataFrame, title: str = "", collapse: int | None = None) -> plt.Figure:
    """The three NC2 measures per layer over epochs (thesis Fig 4.1.2, eqs 2.19-2.21)."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    fig, axes = _panels(["Avg cos(μ̃_c, μ̃_c') + 1/(C−1)", "Std cos(μ̃_c, μ̃_c')", "Std ‖μ̃_c‖ / Avg ‖μ̃_c‖"])
    for ax, measure in zip(axes, (M.NC2_COS_MEAN, M.NC2_COS_STD, M.NC2_NORM_CV)):
        _epoch_lines(ax, _measure(metrics, measure))
        _mark_collapse(ax, collapse)
    axes[-1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_nc3(metrics: pd.DataFrame, spectra: pd.DataFrame, title: str = "", num_classes: int = 10,
             collapse: int | None = None, top: int = 30) -> plt.Figure:
    """NC3 (thesis Fig 4.1.3): relative singular values of each layer's weight at the last epoch,
    the first C highlighted, and AvCosPABS per layer over epochs."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    fig, (ax_sv, ax_cos) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1.6, 1]})
    last = spectra[(spectra["epoch"] == spectra["epoch"].max()) & (spectra["index"] <= top)]
    layers = sorted(last["layer"].unique())
    colors = plt.get_cmap("plasma")(np.linspace(0, 0.9, len(layers)))
    for color, layer in zip(colors, layers):
        sv = last[last["layer"] == layer].sort_values("index")
        ax_sv.plot(sv["index"], sv["sv_rel"], color=color, linewidth=1, label=f"layer {layer}")
        head = sv[sv["index"] <= num_classes]
        ax_sv.scatter(head["index"], head["sv_rel"], color=color, s=10)
    ax_sv.axvspan(0.5, num_classes + 0.5, color="grey", alpha=0.12, label=f"first C = {num_classes}")
    ax_sv.axhline(1 / num_classes, color="grey", linewidth=0.8, linestyle=":")
    ax_sv.set(xlabel="singular value index", ylabel="σ_i / Σ σ", title=f"relative singular values (top {top})")
    ax_sv.legend(fontsize=6, ncol=2)
    _epoch_lines(ax_cos, _measure(metrics, M.NC3_AVCOS))
    ax_cos.set(title="AvCosPABS(V_C, M)", ylim=(0, 1.05))
    _mark_collapse(ax_cos, collapse)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_nc4(metrics: pd.DataFrame, title: str = "", collapse: int | None = None) -> plt.Figure:
    """NC4 (thesis Fig 4.1.4): NCC accuracy per layer (train, test) at every epoch, the network's
    accuracy as horizontal lines, and the NCC/network agreement."""
    collapse = final_collapse_layer(metrics) if collapse is None else collapse
    fig, axes = _panels(["NCC accuracy, train", "NCC accuracy, test", "NCC agrees with network (train)"])
    net = metrics[(metrics["measure"] == M.NET_ACC) & (metrics["epoch"] == metrics["epoch"].max())]
    for ax, split in zip(axes, ("train", "test")):
        _epoch_lines(ax, _measure(metrics, M.NCC_ACC, split))
        ax.axhline(net[net["split"] == split]["value"].iloc[0], color="black", linewidth=1,
                   label="network (last epoch)")
        _mark_collapse(ax, collapse)
    _epoch_lines(axes[2], _measure(metrics, M.NCC_AGREE))
    _mark_collapse(axes[2], collapse)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_accuracy(log: pd.DataFrame, title: str = "") -> plt.Figure:
    """Train and test accuracy (eval mode) and training loss over epochs."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(8, 3))
    evaluated = log.dropna(subset=["test_acc"])
    ax_acc.plot(evaluated["epoch"], evaluated["train_acc"], label="train")
    ax_acc.plot(evaluated["epoch"], evaluated["test_acc"], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    ax_acc.legend()
    ax_loss.plot(log["epoch"], log["loss"])
    ax_loss.set(xlabel="epoch", yscale="log", title="training loss")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


GRID_MEASURES = {M.REL_TRACE_W: "Tr Σ_W / Tr Σ_T", M.NC1: "NC1", M.NC2_COS_STD: "NC2 std cos",
                 M.NC3_AVCOS: "NC3 AvCosPABS", M.NCC_ACC: "NC4 NCC train acc"}


def plot_grid(tables: dict[str, pd.DataFrame], measures: dict[str, str] = GRID_MEASURES) -> plt.Figure:
    """Appendix B layout: one row per experiment (label -> metrics table), one column per measure,
    each panel the measure per layer at every epoch, collapse layer marked."""
    fig, axes = plt.subplots(len(tables), len(measures), figsize=(3.0 * len(measures), 2.4 * len(tables)),
                             squeeze=False)
    log_scale = {M.NC1, M.CDNV, M.TRACE_W}
    for row, (label, metrics) in zip(axes, tables.items()):
        collapse = final_collapse_layer(metrics)
        for ax, (measure, name) in zip(row, measures.items()):
            _epoch_lines(ax, _measure(metrics, measure), log=measure in log_scale)
            _mark_collapse(ax, collapse)
            ax.set_title(name, fontsize=9)
        row[0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def plot_collapse_vs_error(summary: pd.DataFrame, num_layers: int, title: str = "") -> plt.Figure:
    """Thesis Fig 4.2.1: layer of collapse against test error, one colour per learning rate, one
    marker per weight decay; repeated seeds are jittered sideways so each stays visible. Runs that
    never collapse are drawn at x = ``num_layers`` (labelled "none")."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    lrs = sorted(summary["lr"].unique())
    colors = dict(zip(lrs, plt.get_cmap("viridis")(np.linspace(0, 0.9, len(lrs)))))
    markers = dict(zip(sorted(summary["weight_decay"].unique()), "osD^v<>"))
    rng = np.random.default_rng(0)
    for (lr, wd), group in summary.groupby(["lr", "weight_decay"]):
        layer = pd.to_numeric(group["collapse_layer"], errors="coerce").fillna(num_layers).to_numpy(float)
        x = layer + rng.uniform(-0.15, 0.15, len(group))
        ax.scatter(x, 1 - group["test_acc"], color=colors[lr], marker=markers[wd], s=36, edgecolor="black",
                   linewidth=0.4, label=f"lr {lr:g}, wd {wd:g}")
    ax.set_xticks(range(num_layers + 1), [*map(str, range(num_layers)), "none"])
    ax.set(xlabel="layer of collapse", ylabel="test error", title=title)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


# Chapters 3 and 4: one panel per layer ---------------------------------------------------------

def _layer_grid(layers: list[int], ncols: int = 4, size: float = 2.8, collapse: int | None = None):
    """A grid with one square-ish panel per layer, titled; post-collapse layers titled in green."""
    ncols = min(ncols, len(layers))
    nrows = -(-len(layers) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax, layer in zip(flat, layers):
        post = collapse is not None and layer >= collapse
        ax.set_title(f"layer {layer}" + (" (collapsed)" if post else ""), fontsize=9,
                     color="tab:green" if post else "black")
    for ax in flat[len(layers):]:
        ax.remove()
    return fig, flat[:len(layers)]


def plot_umap(embeddings: dict[int, np.ndarray], colors: dict[int, np.ndarray] | np.ndarray, title: str = "",
              collapse: int | None = None, kind: str = "class") -> plt.Figure:
    """UMAP panels per layer (thesis Fig 4.3.1, C.2.3, C.2.4). ``colors``: per point, a class or
    an induced label (``kind="class"``, -1 = excluded, grey), or a bool "label is wrong"
    (``kind="error"``: errors red, correct light grey, drawn on top)."""
    fig, axes = _layer_grid(sorted(embeddings), collapse=collapse)
    for ax, layer in zip(axes, sorted(embeddings)):
        xy = embeddings[layer]
        c = np.asarray(colors[layer] if isinstance(colors, dict) else colors)
        if kind == "error":
            ax.scatter(*xy[~c].T, s=1, color="lightgrey", rasterized=True)
            ax.scatter(*xy[c].T, s=2, color="tab:red", rasterized=True)
            ax.text(0.02, 0.02, f"{c.mean():.1%} wrong", transform=ax.transAxes, fontsize=8)
        else:
            palette = plt.get_cmap("tab10")(np.mod(c, 10))
            palette[c < 0] = (0.8, 0.8, 0.8, 1.0)
            ax.scatter(*xy.T, s=1, c=palette, rasterized=True)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_cluster_matrices(matrices: dict[int, pd.DataFrame], title: str = "", collapse: int | None = None,
                          max_rows: int = 200) -> plt.Figure:
    """Cluster-by-class matrices per layer (thesis Fig 4.3.2, C.2.5): rows = clusters ordered by
    label then size, columns = classes, colour = share of the cluster's points in that class.
    Layers with more than ``max_rows`` kept clusters show their ``max_rows`` largest per label order."""
    fig, axes = _layer_grid(sorted(matrices), collapse=collapse)
    for ax, layer in zip(axes, sorted(matrices)):
        m = matrices[layer]
        if len(m) > max_rows:
            m = m.loc[m.index.get_level_values("size").argsort()[::-1][:max_rows]].sort_index(level=0, sort_remaining=False)
        ax.imshow(m.to_numpy(), aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(m.shape[1]), m.columns, fontsize=6)
        ax.set_ylabel(f"{len(matrices[layer])} clusters", fontsize=8)
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_pca_tail(spectrum: pd.DataFrame, title: str = "", collapse: int | None = None,
                  level: float = 0.01) -> plt.Figure:
    """Thesis Fig 4.4.1: 1 − cumulative explained variance against component, per layer, with the
    component where it passes ``level`` marked."""
    layers = sorted(spectrum["layer"].unique())
    fig, axes = _layer_grid(layers, collapse=collapse)
    for ax, layer in zip(axes, layers):
        rows = spectrum[spectrum["layer"] == layer]
        ax.plot(rows["component"] + 1, rows["tail_share"].clip(lower=1e-12))
        below = rows[rows["tail_share"] < level]
        if len(below):
            k = int(below["component"].iloc[0]) + 1
            ax.axvline(k, color="tab:red", linewidth=0.8)
            ax.text(0.95, 0.9, f"{k} comps < {level:g}", transform=ax.transAxes, ha="right", fontsize=8)
        ax.axhline(level, color="grey", linewidth=0.8, linestyle=":")
        ax.set(xscale="log", yscale="log", xlabel="component")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_l1_dimensionality(spectrum: pd.DataFrame, title: str = "", collapse: int | None = None,
                           top: int = 100) -> plt.Figure:
    """Thesis Fig 4.4.2: corresponding dimensionality π‖u‖₁²/2 of the top principal directions,
    per layer, against the same for columns of a random orthonormal matrix (grey)."""
    layers = sorted(spectrum["layer"].unique())
    fig, axes = _layer_grid(layers, collapse=collapse)
    for ax, layer in zip(axes, layers):
        rows = spectrum[(spectrum["layer"] == layer) & (spectrum["component"] < top)]
        ax.plot(rows["component"] + 1, np.pi * rows["random_l1"] ** 2 / 2, color="grey", linewidth=0.8,
                label="random")
        ax.plot(rows["component"] + 1, rows["corresponding_dim"], label="principal directions")
        ax.set(xlabel="component", ylabel="π‖u‖₁²/2")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_neuron_sparsity(neurons: pd.DataFrame, title: str = "", collapse: int | None = None) -> plt.Figure:
    """Thesis Figs 4.4.3-4.4.4: per layer, neurons sorted by sparsity (share of exact zeros, red,
    right axis) with the mean ± std of their non-zero activations in the same order."""
    layers = sorted(neurons["layer"].unique())
    fig, axes = _layer_grid(layers, collapse=collapse)
    for ax, layer in zip(axes, layers):
        rows = neurons[neurons["layer"] == layer]
        ax.fill_between(rows["rank"], rows["mean"] - rows["std"], rows["mean"] + rows["std"], alpha=0.3)
        ax.plot(rows["rank"], rows["mean"], linewidth=0.8, label="non-zero mean ± std")
        twin = ax.twinx()
        twin.plot(rows["rank"], rows["sparsity"], color="tab:red", linewidth=1.2)
        twin.set_ylim(0, 1.02)
        twin.tick_params(labelsize=7, colors="tab:red")
        ax.set_xlabel("neuron (sorted by sparsity)")
    fig.suptitle(title)
    fig.tight_layout()
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
    ax.axhline(net, color="black", linewidth=1, label=f"full network ({net:.3f})")
    _mark_collapse(ax, collapse)
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
    right.axhline(1, color="black", linewidth=1)
    right.set(xlabel="cut at layer", ylabel="speed-up (full / cut)", yscale="log", title="measured speed-up")
    for ax in (left, right):
        _mark_collapse(ax, collapse)
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

"""Claims tables: what the thesis claims, what this run measured, and whether the claim holds.

Each chapter ends with one table built by one function here from the chapter's own results:

    claim | thesis (section, figure/table, value) | this run | holds

``holds`` is ``YES``, ``NO`` or ``NOT_MEASURABLE`` (e.g. no layer of collapse, too few runs).
Every verdict is a fixed rule on measured numbers; the rules' tolerances are the module
constants below, so a reader can see (and change) what "near 1" or "agree" means. The
chapter prose states what the thesis claims; only these tables say what a run shows.
"""
from __future__ import annotations

import os
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import metrics as M

YES, NO, NOT_MEASURABLE = "yes", "no", "not measurable at this scale"
COLUMNS = ("claim", "thesis", "this_run", "holds")

#: A trend "falls"/"rises" when its Spearman rank correlation is at most -RANK_TREND (or at least +RANK_TREND).
RANK_TREND = 0.8
#: NCC train accuracy that counts as perfect classification by the class means (NC4).
NCC_PERFECT = 0.99
#: Largest gap between NCC and network test accuracy that counts as "the same" (NC4, thesis 4.1.1).
NCC_TEST_GAP = 0.02
#: AvCosPABS at or above this counts as "near 1" (NC3).
AVCOS_NEAR_ONE = 0.9
#: Singular values at or above this share of the largest count towards a weight's effective rank.
RANK_RTOL = 0.1
#: Seeds of one hyperparameter pair "agree" when their collapse layers are at most this far apart...
SEED_SPREAD = 1
#: ...and the claim holds when at least this share of the pairs agree.
SEED_AGREEMENT = 0.75
#: "Very different generalisation" at one collapse layer: a test-accuracy range of at least this.
ACCURACY_SPREAD = 0.05
#: Clustering accuracy that counts as class-pure clusters (thesis Table 4.3.1: 99.2%, 99.9%).
CLUSTER_PURE = 0.99
#: Hierarchical accuracy that counts as "clusters stay together" (thesis Table 4.3.2: 99.8%).
HIERARCHY_KEPT = 0.95

#: Thesis Tables 4.3.1 and 4.3.2 (MLP-10 on CIFAR10, 50,000 points, cosine/complete at 0.7).
THESIS_TABLE_4_3_1 = pd.DataFrame({"layer": [0, 1, 2, 3, 4, 5], "avg_points": [11, 4.4, 4.2, 5.0, 18, 543],
                                   "accuracy": [0.45, 0.69, 0.77, 0.88, 0.992, 0.999],
                                   "excluded": [1997, 12791, 14861, 8062, 130, 6]})
THESIS_TABLE_4_3_2 = pd.DataFrame({"layer_from": [0, 1, 2, 3, 4], "layer_to": [1, 2, 3, 4, 5],
                                   "hierarchical_accuracy": [0.19, 0.48, 0.50, 0.81, 0.998]})


@dataclass(frozen=True)
class Claim:
    claim: str
    thesis: str
    this_run: str
    holds: str


def verdict(ok: bool | None) -> str:
    """YES / NO, or NOT_MEASURABLE for None."""
    return NOT_MEASURABLE if ok is None else YES if ok else NO


def table(claims: list[Claim]) -> pd.DataFrame:
    """The claims as a DataFrame with ``COLUMNS``."""
    return pd.DataFrame([astuple(c) for c in claims], columns=list(COLUMNS))


def save(claims: pd.DataFrame, chapter: str, folder: str | Path | None = None) -> Path:
    """Write ``<folder>/<chapter>.csv``; folder default ``$INC_BUILD_DIR/claims`` (``build/lab/claims``).

    ``make reproduce`` gathers these files into ``build/<scale>/claims.csv`` and the book's index."""
    folder = Path(folder or Path(os.environ.get("INC_BUILD_DIR", "build/lab")) / "claims")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.csv"
    claims.to_csv(path, index=False)
    return path


def to_markdown(claims: pd.DataFrame) -> str:
    """The claims as a Markdown table (verdicts in bold), for ``IPython.display.Markdown``."""
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join([*(cell(v) for v in row[:-1]), f"**{row[-1]}**"]) + " |"
              for row in claims[list(COLUMNS)].itertuples(index=False)]
    return "\n".join(lines)


def spearman(x, y) -> float:
    """Spearman rank correlation; NaN when either side is constant or has < 3 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def bootstrap_spearman(x, y, n: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the Spearman correlation, resampling (x, y) pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    draws = [spearman(x[i], y[i]) for i in rng.integers(0, len(x), (n, len(x)))]
    draws = np.asarray(draws)[~np.isnan(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _fmt(values, digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def _layers(collapse: int | None, last: int) -> str:
    return "none" if collapse is None else f"layer {collapse} of 0-{last}"


# ---------------------------------------------------------------- chapter 1: NC in every layer
def effective_rank(sv_rel: pd.Series, rtol: float = RANK_RTOL) -> int:
    """Number of singular values at or above ``rtol`` times the largest (from NC3 relative values)."""
    s = np.asarray(sv_rel, float)
    return int((s >= rtol * s.max()).sum())


def chapter1(metrics: pd.DataFrame, spectra: pd.DataFrame, *, measure: str = M.REL_TRACE_W,
             threshold: float = 0.2, num_classes: int = 10) -> pd.DataFrame:
    """Thesis 4.1 on one run: ``metrics`` and ``spectra`` from ``measure.measure_run`` (every checkpoint)."""
    final_epoch = metrics["epoch"].max()
    final = metrics[metrics["epoch"] == final_epoch]
    train = final[(final["split"] == "train") & (final["layer"] >= 0)]
    per_layer = train.pivot_table(index="layer", columns="measure", values="value")
    last = int(per_layer.index.max())
    collapse = M.collapse_layer(final, measure, threshold)
    rel = per_layer[M.REL_TRACE_W]
    rho = spearman(rel.index, rel)
    claims = [
        Claim("The relative within-class trace falls with depth at the end of training",
              "4.1.1, Fig 4.1.1: falls layer by layer, below 0.2 from layer 5 (MLP-10, CIFAR10)",
              f"Spearman ρ over layers = {rho:.2f} (layer 0: {rel.iloc[0]:.2f}, layer {last}: {rel.iloc[-1]:.3f})",
              verdict(None if np.isnan(rho) else rho <= -RANK_TREND)),
        Claim("A layer of collapse exists before the last layer",
              f"4.1.1-4.1.2: layer 5 of MLP-10 on CIFAR10, layer 3 on MNIST ({measure} < {threshold:g})",
              _layers(collapse, last), verdict(collapse is not None and collapse < last)),
    ]
    after = per_layer.loc[collapse:] if collapse is not None else per_layer.iloc[0:0]
    net = final[final["measure"] == M.NET_ACC].set_index("split")["value"]
    ncc_train = after[M.NCC_ACC]
    ncc_test = (final[(final["split"] == "test") & (final["measure"] == M.NCC_ACC)]
                .set_index("layer")["value"].loc[collapse:] if collapse is not None else pd.Series(dtype=float))
    gap = (ncc_test - net.get("test", np.nan)).abs()
    claims += [
        Claim(f"From the collapse layer on, the nearest class mean classifies the training set (accuracy ≥ {NCC_PERFECT})",
              "4.1.1, Fig 4.1.4: NCC train accuracy 1 from layer 5",
              f"lowest NCC train accuracy from layer {collapse} on: {ncc_train.min():.3f}" if len(after) else "no collapse",
              verdict(bool(ncc_train.min() >= NCC_PERFECT) if len(after) else None)),
        Claim(f"From the collapse layer on, NCC test accuracy equals the network's (within {NCC_TEST_GAP})",
              "4.1.1, Fig 4.1.4: NCC and network test accuracy the same",
              f"network {net.get('test', np.nan):.3f}; largest gap {gap.max():.3f}" if len(gap) else "no collapse",
              verdict(bool(gap.max() <= NCC_TEST_GAP) if len(gap) else None)),
    ]
    nc1_last = (metrics[(metrics["split"] == "train") & (metrics["layer"] == last) & (metrics["measure"] == M.NC1)]
                .sort_values("epoch"))
    rho_t = spearman(nc1_last["epoch"], nc1_last["value"])
    claims.append(Claim(
        "NC1 of the last layer falls over training", "4.1.1, Fig 4.1.1: lines of later checkpoints lie lower",
        f"epochs {_fmt(nc1_last['epoch'], 0)}: NC1 {_fmt(nc1_last['value'], 3)} (Spearman ρ = {rho_t:.2f})",
        verdict(None if np.isnan(rho_t) else rho_t <= -RANK_TREND)))
    avcos = after[M.NC3_AVCOS].dropna() if M.NC3_AVCOS in after else pd.Series(dtype=float)
    claims.append(Claim(
        f"AvCosPABS is near 1 (≥ {AVCOS_NEAR_ONE}) from the collapse layer on",
        "4.1.1, Fig 4.1.3: converges to 1 (eq 2.25-2.26)",
        f"layers {collapse}-{last}: {_fmt(avcos)}" if len(avcos) else "no collapse",
        verdict(bool(avcos.min() >= AVCOS_NEAR_ONE) if len(avcos) else None)))
    final_spectra = spectra[spectra["epoch"] == final_epoch]
    ranks = ({int(layer): (effective_rank(g["sv_rel"]), len(g)) for layer, g in final_spectra.groupby("layer")
              if layer >= collapse} if collapse is not None else {})
    claims.append(Claim(
        f"After collapse the weights have rank C−1 = {num_classes - 1}",
        "4.1.2, Fig 4.1.7: rank 9 = C−1 rather than C in MLP-10 on MNIST (5.2)",
        (f"effective rank (σ ≥ {RANK_RTOL:g}·σ₁) of layers {collapse}-{last}: "
         + ", ".join(f"≥ {r}" if r == n else str(r) for r, n in ranks.values())) if ranks else "no collapse",
        verdict(all(r == num_classes - 1 for r, _ in ranks.values()) if ranks else None)))
    return table(claims)


# ---------------------------------------------------------------- chapter 2: collapse vs generalisation
def chapter2(summary: pd.DataFrame, num_layers: int, *, label: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Thesis 4.2 on one sweep: ``summary`` from ``measure.collapse_summary``; ``num_layers`` probe points;
    ``label`` (e.g. the sweep's name) prefixes every claim.

    Runs that never collapse are ranked as collapsing at ``num_layers`` (deeper than any layer)."""
    runs = summary[summary["included"]].copy()
    runs["depth"] = runs["collapse_layer"].astype("float").fillna(num_layers)
    runs["error"] = 1 - runs["test_acc"]
    pairs = runs.groupby(["lr", "weight_decay"]).agg(depth=("depth", "mean"), spread=("depth", lambda d: d.max() - d.min()),
                                                     seeds=("depth", "size"), error=("error", "mean"))
    claims = []
    moves = pairs["depth"].max() - pairs["depth"].min() if len(pairs) > 1 else None
    claims.append(Claim(
        "The layer of collapse moves with learning rate and weight decay",
        "4.2, Fig 4.2.1: collapse layers spread across the network over the lr x wd grid",
        (f"{len(pairs)} pairs; mean collapse layer per pair from {pairs['depth'].min():.1f} to "
         f"{pairs['depth'].max():.1f}") if moves is not None else f"{len(pairs)} pair(s)",
        verdict(None if moves is None else moves >= 1)))
    if len(runs) >= 4:
        rho = spearman(runs["depth"], runs["error"])
        lo, hi = bootstrap_spearman(runs["depth"], runs["error"], seed=seed)
        related = None if np.isnan(rho) else bool(lo > 0 or hi < 0)
        text = f"Spearman ρ(collapse layer, test error) = {rho:.2f}, 95% bootstrap interval [{lo:.2f}, {hi:.2f}], {len(runs)} runs"
    else:
        related, text = None, f"{len(runs)} runs"
    claims.append(Claim("The layer of collapse is related to test error",
                        "4.2: 'somewhat correlates' with generalisation (Fig 4.2.1)", text, verdict(related)))
    if len(pairs) >= 3:
        best = pairs["error"].idxmin()
        depth = pairs.loc[best, "depth"]
        middle = bool(pairs["depth"].min() < depth < pairs["depth"].max())
        text = (f"best pair lr {best[0]:g}, wd {best[1]:g} (test error {pairs.loc[best, 'error']:.3f}) collapses at "
                f"{depth:.1f}; pairs range {pairs['depth'].min():.1f}-{pairs['depth'].max():.1f}")
    else:
        middle, text = None, f"{len(pairs)} pair(s)"
    claims.append(Claim("The best-generalising hyperparameters collapse in the middle, worse ones both earlier and later",
                        "4.2, first and third observations: an optimal middle point", text, verdict(middle)))
    seeded = pairs[pairs["seeds"] >= 2]
    share = float((seeded["spread"] <= SEED_SPREAD).mean()) if len(seeded) else None
    claims.append(Claim(
        f"Seeds of one setting agree on the collapse layer (within {SEED_SPREAD} layer)",
        "4.2, second observation: repeated runs land close together",
        f"{int((seeded['spread'] <= SEED_SPREAD).sum())} of {len(seeded)} pairs agree" if len(seeded) else "no pair with 2+ seeds",
        verdict(None if share is None else share >= SEED_AGREEMENT)))
    by_layer = runs.groupby("depth")["test_acc"].agg(["size", lambda a: a.max() - a.min()])
    by_layer.columns = ["runs", "range"]
    shared = by_layer[by_layer["runs"] >= 2]
    claims.append(Claim(
        f"Runs with the same collapse layer can generalise very differently (test accuracy range ≥ {ACCURACY_SPREAD})",
        "4.2, fourth observation",
        (f"widest test-accuracy range at one collapse layer: {shared['range'].max():.3f} "
         f"(layer {shared['range'].idxmax():g}, {int(shared.loc[shared['range'].idxmax(), 'runs'])} runs)")
        if len(shared) else "no layer shared by two runs",
        verdict(bool(shared["range"].max() >= ACCURACY_SPREAD) if len(shared) else None)))
    result = table(claims)
    return result.assign(claim=f"{label}: " + result["claim"]) if label else result


# ---------------------------------------------------------------- chapter 3: clustering
def chapter3(clusters: pd.DataFrame, hierarchy: pd.DataFrame, collapse: int | None,
             num_classes: int = 10) -> pd.DataFrame:
    """Thesis 4.3 on one run: ``clusters`` = ``clustering.clustering_table`` and ``hierarchy`` =
    ``clustering.hierarchy_table`` of the cosine/complete clustering; ``collapse`` its layer of collapse."""
    acc = clusters.set_index("layer")["accuracy"]
    kept = clusters.set_index("layer")["clusters"]
    h = hierarchy.set_index("layer_from")["hierarchical_accuracy"]
    first = int(acc.index.min())
    if collapse is None or collapse not in acc.index:
        missing = "no collapse layer among the clustered layers"
        return table([Claim(c, t, missing, NOT_MEASURABLE) for c, t in (
            ("Clustering accuracy rises from the input to the collapse layer", "4.3.2, Table 4.3.1"),
            ("From the collapse layer on, clusters are class-pure", "4.3.2, Table 4.3.1"),
            ("The last layer's clusters are about one per class", "4.3.2, Table 4.3.1, Fig 4.3.2"),
            ("Clusters do not nest before the collapse layer", "4.3.3, Table 4.3.2"),
            ("Clusters stay together after the collapse layer", "4.3.3, Table 4.3.2"))])
    upto = acc.loc[:collapse]
    rho = spearman(upto.index, upto)
    after = acc.loc[collapse:]
    before_h, after_h = h.loc[:collapse - 1], h.loc[collapse:]
    last = int(acc.index.max())
    return table([
        Claim("Clustering accuracy rises from the input to the collapse layer",
              "4.3.2, Table 4.3.1: 45% at layer 0 to 99.2% at the collapse layer 4",
              f"layer {first}: {acc.iloc[0]:.2f} -> layer {collapse}: {acc.loc[collapse]:.2f} (Spearman ρ = {rho:.2f})",
              verdict(bool(acc.loc[collapse] > acc.iloc[0] and (np.isnan(rho) or rho >= RANK_TREND)))),
        Claim(f"From the collapse layer on, clusters are class-pure (accuracy ≥ {CLUSTER_PURE})",
              "4.3.2, Table 4.3.1: 99.2% and 99.9% in layers 4-5",
              f"layers {collapse}-{last}: {_fmt(after, 3)}", verdict(bool(after.min() >= CLUSTER_PURE))),
        Claim(f"The last layer's clusters are about one per class (≤ {2 * num_classes} kept clusters)",
              "4.3.2, Table 4.3.1: 543 points per cluster in layer 5; Fig 4.3.2: one dark block per class",
              f"kept clusters per layer {first}-{last}: {', '.join(str(int(k)) for k in kept)}",
              verdict(bool(kept.loc[last] <= 2 * num_classes))),
        Claim(f"Clusters do not nest before the collapse layer (hierarchical accuracy < {HIERARCHY_KEPT})",
              "4.3.3, Table 4.3.2: 19%, 48%, 50%, 81% before the collapse",
              f"{_fmt(before_h)}" if len(before_h) else "collapse at the first layer",
              verdict(bool(before_h.max() < HIERARCHY_KEPT) if len(before_h) else None)),
        Claim(f"Clusters stay together after the collapse layer (hierarchical accuracy ≥ {HIERARCHY_KEPT})",
              "4.3.3, Table 4.3.2: 99.8% from layer 4 to 5",
              f"{_fmt(after_h, 3)}" if len(after_h) else "collapse at the last clustered layer",
              verdict(bool(after_h.min() >= HIERARCHY_KEPT) if len(after_h) else None)),
    ])


def thesis_tables_4_3(clusters: pd.DataFrame, hierarchy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This run's Tables 4.3.1 and 4.3.2 beside the thesis's, joined on the layer (thesis columns suffixed)."""
    ours = clusters[["layer", "clusters", "avg_points", "accuracy", "excluded"]]
    return (ours.merge(THESIS_TABLE_4_3_1, on="layer", how="left", suffixes=("", " (thesis)")),
            hierarchy.merge(THESIS_TABLE_4_3_2, on=["layer_from", "layer_to"], how="left", suffixes=("", " (thesis)")))


# ---------------------------------------------------------------- chapter 4: PCA and sparsity
def chapter4(components: dict[int, int], spectrum: pd.DataFrame, neurons: pd.DataFrame, collapse: int | None,
             num_classes: int = 10, level: float = 0.01, top: int = 10) -> pd.DataFrame:
    """Thesis 4.4 on one run: ``components`` {layer: components to leave < ``level`` of the variance},
    ``spectrum`` = ``spectra.spectrum_table``, ``neurons`` = ``spectra.neuron_table`` (hidden layers)."""
    comp = pd.Series(components).sort_index()
    last = int(comp.index.max())
    if collapse is None or collapse > last or collapse <= int(comp.index.min()):
        why = "no collapse layer with hidden layers on both sides"
        return table([Claim(c, t, why, NOT_MEASURABLE) for c, t in (
            (f"After collapse at most C = {num_classes} components hold all but {level:g} of the variance",
             "4.4.1, Fig 4.4.1b"),
            ("The leading principal directions align more with neurons after collapse", "4.4.2, Fig 4.4.2"),
            ("Neuron sparsity spreads to extremes after collapse", "4.4.3, Fig 4.4.3"))])
    after = comp.loc[collapse:]
    corr = spectrum[spectrum["component"] < top].groupby("layer")["corresponding_dim"].mean()
    spread = neurons.groupby("layer")["sparsity"].std()
    pre, post = lambda s: s.loc[:collapse - 1].mean(), lambda s: s.loc[collapse:].mean()
    return table([
        Claim(f"After collapse at most C = {num_classes} components hold all but {level:g} of the variance",
              "4.4.1, Fig 4.4.1b: the data occupy a much smaller space from the collapse layer on",
              f"components per layer {int(comp.index.min())}-{last}: {', '.join(str(int(c)) for c in comp)}",
              verdict(bool(after.max() <= num_classes))),
        Claim(f"The leading principal directions align more with neurons after collapse "
              f"(lower ℓ1 corresponding dimensionality of the top {top})",
              "4.4.2, Fig 4.4.2: about d before collapse, plateaus well below d after",
              f"mean before: {pre(corr):.0f}, after: {post(corr):.0f}", verdict(bool(post(corr) < pre(corr)))),
        Claim("Neuron sparsity spreads to extremes after collapse (larger spread across neurons)",
              "4.4.3, Fig 4.4.3: tightly around 0.6 before; extremely sparse and non-sparse neurons after",
              f"std of neuron sparsity, mean before: {pre(spread):.3f}, after: {post(spread):.3f}",
              verdict(bool(post(spread) > pre(spread)))),
    ])

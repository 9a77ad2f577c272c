"""Chapter 1's claims (thesis 4.1, appendix B): NC1-4 in every layer, per experiment and across them.

Every row is ``judge(effect, margin)`` (``core.decide``): ``effect`` signed in the direction the
thesis claims, ``margin`` what noise or chance gives for it. The noise comes from the run itself:
binomial errors of accuracies on the train/test sets, the checkpoint-to-checkpoint fluctuation of
a measure (on a log scale, where collapse measures move), the layer-to-layer spread of the
singular-value ratios, or random baselines (random subspaces and Gaussian matrices of the
layer's shape).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from .. import metrics as M
from .core import Z, fmt, judge, spearman, table, unmeasurable

#: NCC train accuracy the thesis calls "perfect" (4.1.1): 1% of the training set is the tolerance.
NCC_PERFECT = 0.99

#: NCC and network test accuracy count as "the same" (4.1.1) within this many accuracy points.
NCC_TEST_GAP = 0.01

#: The spectral gap is looked for among the leading GAP_SEARCH·C singular values ("a sharp drop after C or C−1").
GAP_SEARCH = 2

#: A layer of collapse is read to within this many layers: seeds of one setting land up to a layer
#: apart (thesis 4.2, second observation; chapter 2 measures it), so one run per experiment cannot
#: resolve a smaller difference between experiments.
LAYER_RESOLUTION = 1

#: Draws of the random baselines (subspaces, Gaussian matrices): their mean is stable to about 1%.
RANDOM_DRAWS = 100

#: Seed of the random baselines, so that a table is the same on every run.
RANDOM_SEED = 0

#: NC2's three measures (eqs 2.19-2.21); all of them must fall for NC2 to converge.
NC2_MEASURES = (M.NC2_COS_MEAN, M.NC2_COS_STD, M.NC2_NORM_CV)


# ---------------------------------------------------------------- pure rules on numbers
def fall_over_checkpoints(values) -> tuple[float, float]:
    """(fall, noise) of a positive measure over checkpoints, in decades (log10).

    ``fall`` = log10(first / last): positive when it fell; ``noise`` = the largest step between
    successive checkpoints against that net direction (a bump up in a fall, a dip in a rise),
    the fluctuation the series shows besides its trend (0 for a monotone series)."""
    logs = np.log10(np.asarray(values, float))
    if len(logs) < 2 or not np.isfinite(logs).all():
        return math.nan, math.nan
    fall = float(logs[0] - logs[-1])
    return fall, float(max((np.sign(fall) * np.diff(logs)).max(), 0.0))


def spectral_gap(sv) -> int:
    """1-based index i of the largest ratio σ_i/σ_{i+1} among the leading values given (descending)."""
    s = np.asarray(sv, float)
    ratios = s[:-1] / np.maximum(s[1:], np.finfo(float).tiny)
    return int(np.argmax(ratios)) + 1


def gap_position(sv, num_classes: int) -> tuple[float, float]:
    """(effect, noise) for "the gap sits at C−1 rather than C", in decades.

    effect = log10(σ_{C−1}/σ_C) − log10(σ_C/σ_{C+1}): positive when the drop after σ_{C−1} is the
    larger; noise = the median |log10 σ_i/σ_{i+1}| of the other ratios among the leading
    GAP_SEARCH·C, what two neighbouring singular values differ by without a gap."""
    s = np.asarray(sv, float)[:GAP_SEARCH * num_classes + 1]
    if len(s) < num_classes + 1 or (s[:num_classes + 1] <= 0).any():
        return math.nan, math.nan
    steps = np.log10(s[:-1] / np.maximum(s[1:], np.finfo(float).tiny))
    c = num_classes
    others = np.delete(steps, [c - 2, c - 1])
    return float(steps[c - 2] - steps[c - 1]), float(np.median(np.abs(others))) if len(others) else math.nan


@lru_cache(maxsize=None)
def random_avcos(dim: int, k_weight: int, k_means: int, draws: int = RANDOM_DRAWS,
                 seed: int = RANDOM_SEED) -> tuple[float, float]:
    """(mean, sd) of AvCosPABS between random k_weight- and k_means-dimensional subspaces of R^dim.

    The mean cosine of the min(k) principal angles, as ``metrics.avcos_pabs`` averages them."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        a = np.linalg.qr(rng.standard_normal((dim, k_weight)))[0]
        b = np.linalg.qr(rng.standard_normal((dim, k_means)))[0]
        values.append(np.linalg.svd(a.T @ b, compute_uv=False).clip(0, 1).mean())
    return float(np.mean(values)), float(np.std(values))


@lru_cache(maxsize=None)
def random_top_share(shape: tuple[int, int], k: int, draws: int = RANDOM_DRAWS // 5,
                     seed: int = RANDOM_SEED) -> tuple[float, float]:
    """(mean, sd) of Σ_{i≤k} σ_i / Σ σ for a Gaussian matrix of ``shape`` (a weight at initialisation)."""
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(draws):
        s = np.linalg.svd(rng.standard_normal(shape), compute_uv=False)
        shares.append(s[:k].sum() / s.sum())
    return float(np.mean(shares)), float(np.std(shares))


# ---------------------------------------------------------------- one experiment
def _prefix(label: str | None, text: str) -> str:
    return f"{label}: {text}" if label else text


def _final(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[metrics["epoch"] == metrics["epoch"].max()]


def _per_layer(metrics: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    rows = metrics[(metrics["split"] == split) & (metrics["layer"] >= 0)]
    return rows.pivot_table(index="layer", columns="measure", values="value")


def _by_epoch(metrics: pd.DataFrame, measure: str, layers) -> pd.Series:
    """Median of ``measure`` over ``layers`` on the train split, per checkpoint (index: epoch)."""
    rows = metrics[(metrics["split"] == "train") & (metrics["measure"] == measure) & metrics["layer"].isin(list(layers))]
    return rows.groupby("epoch")["value"].median().sort_index()


def chapter1(metrics: pd.DataFrame, spectra: pd.DataFrame, shapes: dict[int, tuple[int, int]], *,
             n_train: int, n_test: int, label: str | None = None, measure: str = M.COLLAPSE_MEASURE,
             threshold: float = M.COLLAPSE_THRESHOLD, num_classes: int = 10) -> pd.DataFrame:
    """Thesis 4.1 on one run.

    ``metrics``, ``spectra``: ``measure.measure_run``'s tables (every checkpoint); ``shapes``:
    layer -> shape of its weight matrix (``metrics.weight_shapes``), for the random baselines;
    ``n_train``, ``n_test``: the sizes of the sets the accuracies were measured on; ``label``
    (the experiment) prefixes every claim."""
    C = num_classes
    final = _final(metrics)
    per_layer = _per_layer(final)
    last = int(per_layer.index.max())
    collapse = M.collapse_layer(final, measure, threshold)
    claims = []

    rel = per_layer[M.REL_TRACE_W]
    rho = spearman(rel.index, rel)
    claims.append(judge(
        "The relative within-class trace falls with depth at the end of training",
        "4.1.1, Fig 4.1.1: falls layer by layer, below 0.2 from layer 5 (MLP-10, CIFAR10)",
        f"Spearman ρ over layers 0-{last} = {rho:.2f} (layer 0: {rel.iloc[0]:.2f}, layer {last}: {rel.iloc[-1]:.3g})",
        -rho, Z / math.sqrt(len(rel) - 1), f"{Z:g}/√(n−1): Spearman ρ of {len(rel)} unrelated points"))

    # A collapse layer before the last: the layers from the one before the last on stay below the
    # threshold, by how many decades, against how far they moved over the last two checkpoints.
    tail = [last - 1, last]
    epochs = sorted(metrics["epoch"].unique())
    rel_tail = metrics[(metrics["split"] == "train") & (metrics["measure"] == measure) & metrics["layer"].isin(tail)]
    worst = rel_tail.groupby("epoch")["value"].max()
    below = math.log10(threshold / worst.iloc[-1])
    moved = abs(math.log10(worst.iloc[-1] / worst.iloc[-2])) if len(epochs) > 1 else math.nan
    claims.append(judge(
        "A layer of collapse exists before the last layer",
        f"4.1.1-4.1.2: layer 5 of MLP-10 on CIFAR10, layer 3 on MNIST ({measure} < {threshold:g})",
        (f"collapse at layer {collapse} of 0-{last}" if collapse is not None else f"no collapse in layers 0-{last}")
        + f"; layers {last - 1}-{last} at most {worst.iloc[-1]:.3g} (threshold {threshold:g})",
        below, moved, "change of log10 of that maximum between the last two checkpoints"))

    after_layers = list(range(collapse, last + 1)) if collapse is not None else []
    no_collapse = f"no layer of collapse ({measure} never stays below {threshold:g})"
    train_acc = final[(final["measure"] == M.NCC_ACC) & (final["split"] == "train") & final["layer"].isin(after_layers)]
    claim = f"From the collapse layer on, the nearest class mean classifies the training set (accuracy ≥ {NCC_PERFECT})"
    thesis = "4.1.1, Fig 4.1.4: 'perfect accuracy on the train-set' from layer 5"
    if after_layers:
        low = train_acc["value"].min()
        claims.append(judge(claim, thesis, f"lowest NCC train accuracy in layers {collapse}-{last}: {low:.4f}",
                            low - NCC_PERFECT, Z * math.sqrt(NCC_PERFECT * (1 - NCC_PERFECT) / n_train),
                            f"{Z:g} binomial SE at {NCC_PERFECT}, n = {n_train:,}"))
    else:
        claims.append(unmeasurable(claim, thesis, "no collapse", no_collapse))

    claim = f"From the collapse layer on, NCC test accuracy equals the network's (within {NCC_TEST_GAP})"
    thesis = "4.1.1, Fig 4.1.4: NCC and network test accuracy the same"
    test = _per_layer(final, "test")
    net_test = final[(final["measure"] == M.NET_ACC) & (final["split"] == "test")]["value"]
    if after_layers and len(net_test) and M.NCC_ACC in test:
        gap = (test.loc[after_layers, M.NCC_ACC] - net_test.iloc[0]).abs()
        worst_layer = int(gap.idxmax())
        disagree = 1 - test.loc[worst_layer, M.NCC_AGREE]
        claims.append(judge(claim, thesis,
                            f"network {net_test.iloc[0]:.4f}; largest gap {gap.max():.4f} (layer {worst_layer})",
                            NCC_TEST_GAP - gap.max(), Z * math.sqrt(max(disagree, 1 / n_test) / n_test),
                            f"{Z:g} SE of a paired difference: √(disagreement {disagree:.3g} / n), n = {n_test:,}"))
    else:
        claims.append(unmeasurable(claim, thesis, "no collapse or no test split", no_collapse))

    nc1_last = _by_epoch(metrics, M.NC1, [last])
    fall, noise = fall_over_checkpoints(nc1_last)
    claims.append(judge(
        "NC1 of the last layer falls over training", "4.1.1, Fig 4.1.1: lines of later checkpoints lie lower",
        f"epochs {fmt(nc1_last.index, 0)}: NC1 {', '.join(f'{v:.3g}' for v in nc1_last)} "
        f"({fall:+.2f} decades from first to last)",
        fall, noise, "largest step against the trend between successive checkpoints (log10)"))

    claim = "NC2 converges over training from the collapse layer on (all three of eqs 2.19-2.21 fall)"
    thesis = "4.1.1, Fig 4.1.2: the three NC2 measures converge to a lower value, most after the collapse"
    if after_layers and len(epochs) > 1:
        falls = {m: fall_over_checkpoints(_by_epoch(metrics, m, after_layers)) for m in NC2_MEASURES}
        text = "; ".join(f"{m}: {f:+.2f}" for m, (f, _) in falls.items())
        claims.append(judge(claim, thesis, f"decades fallen (median of layers {collapse}-{last}) {text}",
                            min(f for f, _ in falls.values()), max(n for _, n in falls.values()),
                            "largest step against the trend of any of the three between successive checkpoints (log10)"))
    else:
        claims.append(unmeasurable(claim, thesis, "no collapse or one checkpoint", no_collapse))

    claims += _nc3(per_layer, spectra[spectra["epoch"] == final["epoch"].iloc[0]], shapes, after_layers, C, no_collapse)
    result = table(claims)
    return result.assign(claim=[_prefix(label, c) for c in result["claim"]])


def _nc3(per_layer: pd.DataFrame, spectra: pd.DataFrame, shapes: dict[int, tuple[int, int]], after: list[int],
         C: int, no_collapse: str) -> list:
    """NC3's rows: AvCosPABS against random subspaces, the top-C share and the position of the gap."""
    rows = []
    claim = "From the collapse layer on, the weights' top-C subspace aligns with the class means (AvCosPABS)"
    thesis = "4.1.1, Fig 4.1.3: AvCosPABS converges to 1 (eq 2.25-2.26)"
    avcos = per_layer.loc[after, M.NC3_AVCOS].dropna() if after and M.NC3_AVCOS in per_layer else pd.Series(dtype=float)
    if len(avcos):
        base = {layer: random_avcos(shapes[layer][1], min(C, shapes[layer][1]), min(C - 1, shapes[layer][1]))
                for layer in avcos.index}
        excess = pd.Series({layer: v - base[layer][0] for layer, v in avcos.items()})
        worst = int(excess.idxmin())
        rows.append(judge(claim, thesis,
                          f"layers {after[0]}-{after[-1]}: {fmt(avcos)} (random subspaces: "
                          f"{fmt(sorted({round(b[0], 2) for b in base.values()}))})",
                          excess.min(), Z * base[worst][1],
                          f"random C-dim subspaces in d = {shapes[worst][1]} dims: mean + {Z:g} sd"))
    else:
        rows.append(unmeasurable(claim, thesis, "no collapse", no_collapse))

    # Layers whose weight has more than C singular values: the others hold C or fewer, so their top C is all.
    layers = [layer for layer in after if layer in shapes and min(shapes[layer]) > C]
    spectrum = {layer: g.sort_values("index")["sv_rel"].to_numpy() for layer, g in spectra.groupby("layer")}
    claim = ("From the collapse layer on, the top C singular values hold more of the weight than a random matrix's "
             "(toward eq 2.24: all of Σσ, 1/C each)")
    thesis = "2.3.4, eq 2.23-2.24; 4.1.1-4.1.2, Figs 4.1.3, 4.1.7: the first 10 at 1/C, the rest very low"
    if layers:
        share = {layer: spectrum[layer][:C].sum() for layer in layers}
        base = {layer: random_top_share(tuple(shapes[layer]), C) for layer in layers}
        excess = {layer: share[layer] - base[layer][0] for layer in layers}
        worst = min(excess, key=excess.get)
        rows.append(judge(claim, thesis,
                          f"share of Σσ in the top {C}, layers {layers[0]}-{layers[-1]}: {fmt(share.values())} "
                          f"(Gaussian matrix: {base[worst][0]:.2f}; eq 2.24: 1)",
                          excess[worst], Z * base[worst][1],
                          f"Gaussian {shapes[worst][0]}x{shapes[worst][1]} matrix: mean + {Z:g} sd"))
    else:
        rows.append(unmeasurable(claim, thesis, "no collapse", "no layer of collapse, or no weight with more than C singular values after it"))

    claim = f"After collapse the weights' spectral gap sits at C−1 = {C - 1} rather than C = {C}"
    thesis = "4.1.2, Fig 4.1.7: rank 9 = C−1 rather than C in MLP-10 on MNIST; 5.1.1"
    if layers:
        gaps = {layer: spectral_gap(spectrum[layer][:GAP_SEARCH * C + 1]) for layer in layers}
        effects = {layer: gap_position(spectrum[layer], C) for layer in layers}
        effect = float(np.mean([e for e, _ in effects.values()]))
        noise = float(np.mean([n for _, n in effects.values()]))
        at = {k: sum(g == k for g in gaps.values()) for k in (C - 1, C)}
        rows.append(judge(claim, thesis,
                          f"largest σ_i/σ_(i+1), i ≤ {GAP_SEARCH * C}, after σ_i with i = {', '.join(map(str, gaps.values()))} "
                          f"in layers {layers[0]}-{layers[-1]} (at C−1: {at[C - 1]}, at C: {at[C]}); "
                          f"mean log10 ratio at C−1 minus at C: {effect:+.2f}",
                          effect, Z * noise, f"{Z:g} x median |log10 σ_i/σ_(i+1)| of the other leading ratios"))
    else:
        rows.append(unmeasurable(claim, thesis, "no collapse", "no layer of collapse, or no weight with more than C singular values after it"))
    return rows


# ---------------------------------------------------------------- across experiments
def across_experiments(experiments: dict[str, dict], *, measure: str = M.COLLAPSE_MEASURE,
                       threshold: float = M.COLLAPSE_THRESHOLD) -> pd.DataFrame:
    """Thesis 4.1.2 and 4.1.3 across the runs of a chapter.

    ``experiments``: label -> {"dataset", "arch", "depth", "metrics"} (``metrics`` as for ``chapter1``).
    Rows: simpler data (digits, MNIST) collapse earlier than harder data with the same
    architecture; and NC is weaker in a ConvNet than in an MLP on the same dataset (AvCosPABS
    after collapse above its own layers' range). Pairs that are not in ``experiments`` give no row."""
    simpler = ("digits", "mnist")
    rows = []
    for a, ea in experiments.items():
        for b, eb in experiments.items():
            if (ea["arch"], ea["depth"]) == (eb["arch"], eb["depth"]) and ea["dataset"] in simpler \
                    and eb["dataset"] not in simpler:
                rows.append(_earlier(a, ea["metrics"], b, eb["metrics"], measure, threshold))
    for a, ea in experiments.items():
        for b, eb in experiments.items():
            if ea["dataset"] == eb["dataset"] and ea["arch"] == "mlp" and eb["arch"] == "convnet":
                rows.append(_mlp_vs_convnet(a, ea["metrics"], b, eb["metrics"], measure, threshold))
    return table(rows)


def _collapse_by_epoch(metrics: pd.DataFrame, measure: str, threshold: float, last: int) -> list[float]:
    """Collapse layer at each checkpoint (last + 1 where it never collapses), in epoch order."""
    return [float(last + 1 if (c := M.collapse_layer(g, measure, threshold)) is None else c)
            for _, g in sorted(metrics.groupby("epoch"), key=lambda kv: kv[0])]


def _earlier(simple: str, m_simple: pd.DataFrame, hard: str, m_hard: pd.DataFrame, measure: str, threshold: float):
    """Simpler data collapse earlier: layer difference against ``LAYER_RESOLUTION`` or how far either
    moved over its last two checkpoints, whichever is larger."""
    last = int(m_simple["layer"].max())
    cs, ch = (_collapse_by_epoch(m, measure, threshold, last) for m in (m_simple, m_hard))
    moved = max(abs(c[-1] - c[-2]) if len(c) > 1 else math.nan for c in (cs, ch))
    name = lambda c: "none" if c[-1] > last else f"{c[-1]:.0f}"
    return judge(f"{simple} collapses earlier than {hard} (simpler data collapse earlier)",
                 "4.1.2: layer 3 on MNIST against layer 5 on CIFAR10 (MLP-10); also NC3",
                 f"layer of collapse {name(cs)} against {name(ch)} (none counts as {last + 1})",
                 ch[-1] - cs[-1], max(moved, LAYER_RESOLUTION),
                 f"{LAYER_RESOLUTION} layer (seed-to-seed resolution of a collapse layer) or the larger change of "
                 f"either's collapse layer between its last two checkpoints ({moved:g})")


def _mlp_vs_convnet(mlp: str, m_mlp: pd.DataFrame, conv: str, m_conv: pd.DataFrame, measure: str, threshold: float):
    """NC3 weaker in the ConvNet: mean AvCosPABS after collapse, MLP minus ConvNet, against 2 SE over layers."""
    claim = f"NC3 is weaker in {conv} than in {mlp} (AvCosPABS after collapse)"
    thesis = "4.1.3, 5.1.3, B.0.1-B.0.2: NC1-4 'not as perfectly as in MLP-10', 'somewhat weaker NC3'"
    values = {}
    for name, m in ((mlp, m_mlp), (conv, m_conv)):
        final = _final(m)
        c = M.collapse_layer(final, measure, threshold)
        if c is None:
            return unmeasurable(claim, thesis, f"{name}: no collapse", f"{name} has no layer of collapse")
        values[name] = _per_layer(final).loc[c:, M.NC3_AVCOS].dropna()
    a, b = values[mlp], values[conv]
    se = math.hypot(a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else 0.0,
                    b.std(ddof=1) / math.sqrt(len(b)) if len(b) > 1 else 0.0)
    return judge(claim, thesis, f"mean over layers after collapse: MLP {a.mean():.2f} ({len(a)} layers), "
                 f"ConvNet {b.mean():.2f} ({len(b)} layers)",
                 a.mean() - b.mean(), Z * se, f"{Z:g} SE of the difference of the layer means")

"""Chapter 2's claims (thesis 4.2, 5.2.1, appendix C.1): the layer of collapse against generalisation.

Every row is ``judge(effect, margin)`` (``core.decide``). The noise of a sweep comes from itself:
binomial errors of test accuracies (``n_test`` images) together with the spread between seeds of
one hyperparameter pair, and shuffles of the runs across pairs (what the collapse layer or the
accuracy would look like if the hyperparameters did not matter). Correlations are bootstrapped
over hyperparameter pairs, since seeds of one pair are not independent evidence about them.
Runs that never collapse count as collapsing at ``num_layers`` (deeper than any layer).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .core import Z, binomial_se, bootstrap_spearman, judge, spearman, table, unmeasurable

#: Shuffles of runs across pairs for the "hyperparameters do not matter" baseline: its sd is stable to ~5%.
SHUFFLES = 1000

#: Seed of the shuffles and the bootstrap, so that a table is the same on every run.
RANDOM_SEED = 0


def _codes(groups) -> np.ndarray:
    """Integer codes 0..G−1 of the group labels."""
    return pd.factorize(pd.Series(list(groups), dtype=object))[0]


def shuffled_baseline(values, groups, statistic, shuffles: int = SHUFFLES, seed: int = RANDOM_SEED) -> tuple[float, float]:
    """(mean, sd) of ``statistic(values, groups)`` over random reassignments of the values to the groups
    (group sizes kept): what the statistic gives when the grouping does not matter."""
    rng = np.random.default_rng(seed)
    values, codes = np.asarray(values, float), _codes(groups)
    draws = [statistic(rng.permutation(values), codes) for _ in range(shuffles)]
    return float(np.mean(draws)), float(np.std(draws))


def spread_of_means(values, groups) -> float:
    """Standard deviation of the group means."""
    codes = _codes(groups)
    return float(np.std(np.bincount(codes, np.asarray(values, float)) / np.bincount(codes)))


def within_range(values, groups) -> float:
    """Mean of max − min within the groups that hold two or more values."""
    values, codes = np.asarray(values, float), _codes(groups)
    high, low = np.full(codes.max() + 1, -np.inf), np.full(codes.max() + 1, np.inf)
    np.maximum.at(high, codes, values)
    np.minimum.at(low, codes, values)
    several = np.bincount(codes) >= 2
    return float((high - low)[several].mean()) if several.any() else math.nan


def pair_se(acc: float, seed_sd: float, seeds: int, n_test: int) -> float:
    """Standard error of a pair's mean test accuracy: binomial (n_test images) and seed spread together."""
    seed_part = seed_sd / math.sqrt(seeds) if seeds > 1 and math.isfinite(seed_sd) else 0.0
    return math.hypot(binomial_se(acc, n_test), seed_part)


def chapter2(summary: pd.DataFrame, num_layers: int, *, n_test: int, label: str | None = None,
             seed: int = RANDOM_SEED) -> pd.DataFrame:
    """Thesis 4.2 on one sweep: ``summary`` from ``measure.collapse_summary``; ``num_layers`` probe points;
    ``n_test`` images in the test set; ``label`` (e.g. the sweep's name) prefixes every claim."""
    runs = summary[summary["included"]].copy()
    runs["depth"] = runs["collapse_layer"].astype("float").fillna(num_layers)
    runs["error"] = 1 - runs["test_acc"]
    runs["pair"] = [f"lr {lr:g}, wd {wd:g}" for lr, wd in zip(runs["lr"], runs["weight_decay"])]
    pairs = runs.groupby("pair", sort=False).agg(
        lr=("lr", "first"), wd=("weight_decay", "first"), depth=("depth", "mean"), seeds=("depth", "size"),
        depth_spread=("depth", lambda d: d.max() - d.min()), acc=("test_acc", "mean"),
        acc_sd=("test_acc", lambda a: a.std(ddof=1) if len(a) > 1 else math.nan),
        acc_spread=("test_acc", lambda a: a.max() - a.min()))
    seeded = pairs[pairs["seeds"] >= 2]
    claims = [*_seed_rows(runs, pairs, seeded), _related(runs, pairs, seed), _middle(pairs, n_test),
              _same_layer(runs, seeded, n_test)]
    result = table(claims)
    return result.assign(claim=f"{label}: " + result["claim"]) if label else result


def _seed_rows(runs: pd.DataFrame, pairs: pd.DataFrame, seeded: pd.DataFrame) -> list:
    """Collapse layer moves with the pair; seeds of one pair agree on it and on the test accuracy."""
    rows = []
    basis = f"runs shuffled across pairs ({SHUFFLES} draws): {Z:g} sd"
    claim = "The layer of collapse moves with learning rate and weight decay"
    thesis = "4.2, Fig 4.2.1: collapse layers spread across the network over the lr x wd grid"
    if len(seeded) and len(pairs) >= 2:
        observed = spread_of_means(runs["depth"], runs["pair"])
        null, sd = shuffled_baseline(runs["depth"], runs["pair"], spread_of_means)
        rows.append(judge(claim, thesis,
                          f"{len(pairs)} pairs; mean collapse layer per pair {pairs['depth'].min():.1f}-"
                          f"{pairs['depth'].max():.1f}; sd of pair means {observed:.2f} (shuffled: {null:.2f})",
                          observed - null, Z * sd, basis))
    else:
        rows.append(unmeasurable(claim, thesis, f"{len(pairs)} pair(s), {len(seeded)} with 2+ seeds",
                                 "needs 2+ pairs and seeds: without them no shuffle baseline"))
    for column, what, unit in (("depth", "collapse layer", "layers"), ("test_acc", "test accuracy", "")):
        claim = f"Seeds of one hyperparameter pair agree on the {what}"
        thesis = "4.2, second observation: repeated runs land close together along both axes"
        if len(seeded) and len(pairs) >= 2:
            observed = within_range(runs[column], runs["pair"])
            null, sd = shuffled_baseline(runs[column], runs["pair"], within_range)
            digits = 1 if column == "depth" else 3
            rows.append(judge(claim, thesis,
                              f"mean seed range over {len(seeded)} pairs {observed:.{digits}f} {unit}".rstrip()
                              + f" (shuffled across pairs: {null:.{digits}f})",
                              null - observed, Z * sd, basis))
        else:
            rows.append(unmeasurable(claim, thesis, f"{len(seeded)} pair(s) with 2+ seeds",
                                     "needs 2+ pairs with 2+ seeds"))
    return rows


def _related(runs: pd.DataFrame, pairs: pd.DataFrame, seed: int):
    """Direction of the relation: a later collapse goes with a higher test error (5.2.1), pair-level bootstrap."""
    claim = "Later collapse goes with higher test error over the sweep"
    thesis = ("4.2, 5.2.1: earlier collapse than the last layer 'a clear indicator of improved performance' "
              "(up to a saturation point); 'somewhat correlates'")
    if len(pairs) < 4:
        return unmeasurable(claim, thesis, f"{len(pairs)} pairs", "needs 4+ hyperparameter pairs for a pair-level bootstrap")
    rho = spearman(runs["depth"], runs["error"])
    lo, hi = bootstrap_spearman(runs["depth"], runs["error"], groups=runs["pair"], seed=seed)
    direction = ("later collapse, higher error" if rho > 0 else "later collapse, lower error" if rho < 0
                 else "no direction")
    return judge(claim, thesis,
                 f"Spearman ρ(collapse layer, test error) = {rho:.2f} ({direction}), 95% interval [{lo:.2f}, {hi:.2f}], "
                 f"{len(runs)} runs in {len(pairs)} pairs",
                 rho, (hi - lo) / 2, "half-width of the 95% bootstrap interval, hyperparameter pairs resampled")


def _middle(pairs: pd.DataFrame, n_test: int):
    """The best pair collapses in the middle: the best pair collapsing earlier and the best collapsing later
    are both worse than it, by more than Z SE of the difference."""
    claim = "The best-generalising pair collapses in the middle; the best earlier and later ones generalise worse"
    thesis = "4.2, first and third observations; 5.2.1: an optimal middle point ('no free lunch')"
    if len(pairs) < 3:
        return unmeasurable(claim, thesis, f"{len(pairs)} pair(s)", "needs 3+ hyperparameter pairs")
    se = {p: pair_se(r.acc, r.acc_sd, r.seeds, n_test) for p, r in pairs.iterrows()}
    best = pairs["acc"].idxmax()
    b = pairs.loc[best]
    sides = {"earlier": pairs[pairs["depth"] < b.depth], "later": pairs[pairs["depth"] > b.depth]}
    if all(s.empty for s in sides.values()):
        return unmeasurable(claim, thesis, f"all {len(pairs)} pairs collapse at {b.depth:.1f}",
                            "no pair collapses earlier or later than the best")
    gaps = {}
    for side, rows in sides.items():
        if len(rows):
            rival = rows["acc"].idxmax()
            gaps[side] = (b.acc - rows.loc[rival, "acc"], Z * math.hypot(se[best], se[rival]), rival)
    text = (f"best {best} (test acc {b.acc:.4f}) collapses at {b.depth:.1f} of pairs {pairs['depth'].min():.1f}-"
            f"{pairs['depth'].max():.1f}; " + "; ".join(f"best {side}: {r} ({b.acc - g:.4f})"
                                                        for side, (g, _, r) in gaps.items()))
    if len(gaps) == 1:  # the best is at one end: the claim's opposite, by the gap to the other side
        (side, (gap, margin, _)), = gaps.items()
        return judge(claim, thesis, text + f"; no pair collapses {'later' if side == 'earlier' else 'earlier'}",
                     0.0 - gap, margin, f"{Z:g} SE of the accuracy difference (binomial, n = {n_test:,}, and seed spread)")
    side = min(gaps, key=lambda s: gaps[s][0])
    gap, margin, _ = gaps[side]
    return judge(claim, thesis, text, gap, margin,
                 f"{Z:g} SE of the accuracy difference (binomial, n = {n_test:,}, and seed spread)")


def sampling_range(sizes: list[int], accuracies: list[float], n_test: int, level: float = 0.95,
                   draws: int = 2000, seed: int = RANDOM_SEED) -> float:
    """The ``level`` quantile of the widest test-accuracy range over groups of runs (``sizes[g]`` runs of
    true accuracy ``accuracies[g]``) that sampling ``n_test`` test images alone gives: the null of
    "one layer, one accuracy". The range of k runs grows with k, and the widest of several groups more."""
    rng = np.random.default_rng(seed)
    widest = np.zeros(draws)
    for k, p in zip(sizes, accuracies):
        sample = rng.binomial(n_test, min(max(p, 0.0), 1.0), size=(draws, k)) / n_test
        widest = np.maximum(widest, sample.max(axis=1) - sample.min(axis=1))
    return float(np.quantile(widest, level))


def _same_layer(runs: pd.DataFrame, seeded: pd.DataFrame, n_test: int):
    """Runs that collapse at one layer generalise very differently: the widest test-accuracy range at one
    layer against what test-set sampling gives for the widest range of such groups (``sampling_range``)
    and the largest seed range of one pair."""
    claim = "Runs with the same collapse layer can generalise very differently"
    thesis = "4.2, fourth observation: collapse at a single layer, highly varying ability to generalise"
    by_layer = runs.groupby("depth")["test_acc"].agg(["size", "min", "max", "mean"])
    shared = by_layer[by_layer["size"] >= 2]
    if shared.empty:
        return unmeasurable(claim, thesis, "no layer shared by two runs", "no two runs collapse at the same layer")
    widths = shared["max"] - shared["min"]
    layer = widths.idxmax()
    row = shared.loc[layer]
    sampling = sampling_range(shared["size"].astype(int).tolist(), shared["mean"].tolist(), n_test)
    seeds = float(seeded["acc_spread"].max()) if len(seeded) else 0.0
    return judge(claim, thesis,
                 f"widest test-accuracy range at one collapse layer: {widths.max():.4f} "
                 f"(layer {layer:g}, {int(row['size'])} runs, {row['min']:.4f}-{row['max']:.4f})",
                 widths.max(), max(sampling, seeds),
                 f"larger of the 95% quantile of the widest range test-set sampling alone gives to these groups of runs "
                 f"(n = {n_test:,}; {sampling:.4f}) and the largest seed range of one pair ({seeds:.4f})")
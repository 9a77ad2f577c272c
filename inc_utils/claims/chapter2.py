"""Chapter 2's claims (thesis 4.2): the layer of collapse against generalisation.

Rules not yet noise-aware: each row still carries a bare threshold verdict (``legacy``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import metrics as M
from .core import NO, NOT_MEASURABLE, YES, bootstrap_spearman, fmt as _fmt, legacy as Claim, spearman, table, verdict

#: Seeds of one hyperparameter pair "agree" when their collapse layers are at most this far apart...
SEED_SPREAD = 1

#: ...and the claim holds when at least this share of the pairs agree.
SEED_AGREEMENT = 0.75

#: "Very different generalisation" at one collapse layer: a test-accuracy range of at least this.
ACCURACY_SPREAD = 0.05


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

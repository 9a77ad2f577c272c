"""Chapter 5's claims (thesis 5.5.1): cutting the network at the layer of collapse.

Rules not yet noise-aware: each row still carries a bare threshold verdict (``legacy``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import metrics as M
from .core import NO, NOT_MEASURABLE, YES, bootstrap_spearman, fmt as _fmt, legacy as Claim, spearman, table, verdict


def _points(x: float) -> str:
    """An accuracy difference in percentage points, one decimal."""
    return f"{100 * x:.1f}"


def chapter5(layers: pd.DataFrame, collapse: int | None,
             correlations: dict[str, tuple[float, float, int]] | None, tolerance: float = 0.01) -> pd.DataFrame:
    """``layers``: ``prune.layer_table`` of the main run; ``collapse``: its layer of collapse;
    ``correlations``: head -> ``prune.rank_correlation`` over the sweep's runs (None: no sweep);
    ``tolerance``: the accuracy a cut may lose and still "keep" the network's (0.01 = 1 point)."""
    net = layers.loc[layers["head"] == "network", "accuracy"].item()
    acc = layers[layers["layer"] >= 0].pivot(index="layer", columns="head", values="accuracy")
    macs = layers[layers["layer"] >= 0].groupby("layer")["macs_frac"].first()
    last = int(acc.index.max())
    rows = []

    claim = "Layers after the layer of collapse can be dropped at inference without losing accuracy"
    if collapse is None:
        rows.append((claim, "5.5.1", "the features never collapse in this run", NOT_MEASURABLE))
    else:
        loss = net - acc.loc[collapse]
        kept = min(loss["ncc"], loss["ridge"]) <= tolerance + 1e-12
        rows.append((claim, "5.5.1",
                     f"cut at the collapse layer {collapse} of {last}: test accuracy changes by "
                     f"{100 * -loss['ridge']:+.1f} points with the ridge head, {100 * -loss['ncc']:+.1f} with NCC "
                     f"(full {net:.3f}); saves {100 * (1 - macs.loc[collapse]):.0f}% of the multiply-adds",
                     verdict(bool(kept))))

    claim = "The layers after the collapse layer do no further useful computation"
    if collapse is None:
        rows.append((claim, "5.1, 5.5.1", "the features never collapse in this run", NOT_MEASURABLE))
    else:
        best_after = acc.loc[collapse:].max().max()
        gain = best_after - acc.loc[collapse].max()
        rows.append((claim, "5.1, 5.5.1",
                     f"best closed-form head after layer {collapse} beats the best at layer {collapse} by "
                     f"{_points(gain)} points", verdict(bool(gain <= tolerance + 1e-12))))

    claim = "Cutting earlier than the collapse layer costs accuracy"
    if collapse is None or collapse == 0:
        rows.append((claim, "5.3, 5.5.1", "no layer before the collapse layer", NOT_MEASURABLE))
    else:
        before = acc.loc[:collapse - 1]
        loss = net - before.max(axis=1)
        keeping = [int(layer) for layer, value in loss.items() if value <= tolerance + 1e-12]
        text = (f"layers {', '.join(map(str, keeping))} before it already keep the accuracy within "
                f"{_points(tolerance)} point(s)" if keeping else
                f"every earlier cut loses more than {_points(tolerance)} point(s) (least: {_points(loss.min())})")
        rows.append((claim, "5.3, 5.5.1", text, verdict(not keeping)))

    for head, name in (("ncc", "nearest-class-centre"), ("ridge", "ridge")):
        claim = (f"The earliest layer that keeps the accuracy tracks the collapse layer across hyperparameters "
                 f"({name} head)")
        rho, p, n = (correlations or {}).get(head, (math.nan, math.nan, 0))
        if math.isnan(rho):
            rows.append((claim, "4.2, 5.5.1", f"no rank correlation: {n} usable sweep runs, or no variation",
                         NOT_MEASURABLE))
        else:
            rows.append((claim, "4.2, 5.5.1", f"Spearman rho = {rho:.2f} (p = {p:.2g}) over {n} sweep runs",
                         verdict(bool(rho > 0 and p < 0.05))))
    return table([Claim(*row) for row in rows])

"""Chapter 5's claims (thesis 5.1, 5.3, 5.5.1): cutting the network at the layer of collapse.

Accuracies are test accuracies on ``n_test`` images: a difference counts when it exceeds ``Z``
binomial standard errors of the difference. "Keeps the accuracy" means losing at most
``tolerance`` (default ``TOLERANCE``). Across chapter 2's sweep, rank correlations get a bootstrap
interval that resamples whole hyperparameter settings (seeds of one setting are one piece of
evidence about hyperparameters).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .core import Z, bootstrap_spearman, difference_se, judge, spearman, table, unmeasurable

#: A cut "keeps" the network's accuracy if it loses at most one point of test accuracy: thesis
#: 5.5.1 proposes dropping the post-collapse layers as a saving, which a reader would take only
#: at (about) no cost.
TOLERANCE = 0.01

#: Head whose accuracy decides the cut claims: the ridge classifier (fitted on the train features
#: with the run's weight decay) is a fresh linear head; the nearest-class-centre head's accuracy
#: is NC4 itself, so judging the collapse by it would be circular.
HEAD = "ridge"

_DROP = ("Layers after the layer of collapse can be dropped at inference without losing accuracy",
         "5.5.1: the post-collapse layers could be replaced by a simpler classifier")
_NOTHING = ("The layers after the collapse layer add no accuracy over a head at the collapse layer",
            "5.1, 5.5.1: after the collapse the remaining layers do no further useful computation")
_EARLIER = ("Cutting before the collapse layer costs accuracy",
            "5.3, 5.5.1: before the collapse the classes are not yet separated")
_TRACKS = {
    "ridge": ("The earliest layer that keeps the accuracy (ridge head) moves with the layer of collapse "
              "across hyperparameters", "4.2, 5.5.1"),
    "ncc": ("Consistency check, near-circular (the nearest-class-centre head's accuracy is NC4): its earliest "
            "keeping layer moves with the layer of collapse", "4.1, 4.2 (NC4 from the collapse layer on)"),
}


def _points(x: float) -> str:
    """An accuracy difference in signed percentage points, one decimal."""
    return f"{100 * x:+.1f}"


def sweep_rows(sweep: pd.DataFrame, head: str) -> tuple[np.ndarray, np.ndarray, list]:
    """(collapse layers, earliest keeping layers, hyperparameter groups) of the sweep's runs, with
    "never" (no collapse, no keeping layer) ranked after the last layer."""
    x = sweep["collapse_layer"].astype("float").fillna(sweep["num_layers"]).to_numpy(float)
    y = sweep[f"keeps_{head}"].astype("float").fillna(sweep["num_layers"]).to_numpy(float)
    groups = list(zip(sweep.get("architecture", [""] * len(sweep)), sweep["lr"], sweep["weight_decay"]))
    return x, y, groups


def chapter5(layers: pd.DataFrame, collapse: int | None, n_test: int, sweep: pd.DataFrame | None = None,
             tolerance: float = TOLERANCE) -> pd.DataFrame:
    """``layers``: ``prune.layer_table`` of the main run (test accuracies on ``n_test`` images);
    ``collapse``: its layer of collapse; ``sweep``: the included runs of ``prune.sweep_keeps`` (None:
    no sweep); ``tolerance``: the accuracy a cut may lose and still keep the network's."""
    net = layers.loc[layers["head"] == "network", "accuracy"].item()
    acc = layers[layers["layer"] >= 0].pivot(index="layer", columns="head", values="accuracy")
    macs = layers[layers["layer"] >= 0].groupby("layer")["macs_frac"].first()
    last = int(acc.index.max())
    se = lambda a: Z * difference_se(a, n_test, net, n_test)
    basis = f"{Z:g} binomial SEs of a difference of test accuracies on {n_test} images"
    rows = []

    if collapse is None:
        why = "the features never collapse in this run"
        rows += [unmeasurable(*claim, "-", why) for claim in (_DROP, _NOTHING, _EARLIER)]
    else:
        cut = acc.loc[collapse, HEAD]
        rows.append(judge(*_DROP, f"cut at the collapse layer {collapse} of {last}: test accuracy changes by "
                          f"{_points(cut - net)} points with the ridge head, {_points(acc.loc[collapse, 'ncc'] - net)} "
                          f"with NCC (full {net:.3f}); saves {100 * (1 - macs.loc[collapse]):.0f}% of the "
                          f"multiply-adds; tolerance {100 * tolerance:g} point(s)",
                          tolerance - (net - cut), se(cut), basis))
        best = acc.loc[collapse:, HEAD].max()
        rows.append(judge(*_NOTHING, f"best ridge head from layer {collapse} on: {best:.3f}, at layer {collapse}: "
                          f"{cut:.3f} ({_points(best - cut)} points); tolerance {100 * tolerance:g} point(s)",
                          tolerance - (best - cut), Z * difference_se(best, n_test, cut, n_test),
                          f"{Z:g} binomial SEs of a difference of test accuracies on {n_test} images"))
        if collapse == 0:
            rows.append(unmeasurable(*_EARLIER, "collapse at layer 0", "no layer before the collapse layer"))
        else:
            before = acc.loc[collapse - 1, HEAD]
            keeping = [int(l) for l in acc.index if net - acc.loc[l, HEAD] <= tolerance]
            rows.append(judge(*_EARLIER, f"cut at layer {collapse - 1}: {_points(before - net)} points (ridge); "
                              f"earliest layer keeping the accuracy: {keeping[0] if keeping else 'none'}",
                              (net - before) - tolerance, se(before), basis))

    for head in ("ridge", "ncc"):
        claim, thesis = _TRACKS[head]
        if sweep is None or len(sweep) < 3:
            rows.append(unmeasurable(claim, thesis, f"{0 if sweep is None else len(sweep)} sweep runs",
                                     "needs chapter 2's sweep with at least 3 runs"))
            continue
        x, y, groups = sweep_rows(sweep, head)
        rho = spearman(x, y)
        lo, hi = bootstrap_spearman(x, y, groups)
        settings = len(set(groups))
        if np.isnan(rho) or np.isnan(lo):
            rows.append(unmeasurable(claim, thesis, f"{len(x)} runs, {settings} settings",
                                     "no variation in the collapse layer or the keeping layer"))
            continue
        rows.append(judge(claim, thesis, f"Spearman ρ = {rho:+.2f} over {len(x)} runs ({settings} hyperparameter "
                          f"settings); 95% interval [{lo:.2f}, {hi:.2f}]", rho, (hi - lo) / 2,
                          "half-width of a 95% bootstrap interval resampling hyperparameter settings"))
    return table(rows)

"""Chapter 1's claims (thesis 4.1): NC1-4 in every layer.

Rules not yet noise-aware: each row still carries a bare threshold verdict (``legacy``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import metrics as M
from .core import NO, NOT_MEASURABLE, YES, bootstrap_spearman, fmt as _fmt, legacy as Claim, spearman, table, verdict

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


def _layers(collapse: int | None, last: int) -> str:
    return "none" if collapse is None else f"layer {collapse} of 0-{last}"


def effective_rank(sv_rel: pd.Series, rtol: float = RANK_RTOL) -> int:
    """Number of singular values at or above ``rtol`` times the largest (from NC3 relative values)."""
    s = np.asarray(sv_rel, float)
    return int((s >= rtol * s.max()).sum())


def chapter1(metrics: pd.DataFrame, spectra: pd.DataFrame, *, measure: str = M.COLLAPSE_MEASURE,
             threshold: float = M.COLLAPSE_THRESHOLD, num_classes: int = 10) -> pd.DataFrame:
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

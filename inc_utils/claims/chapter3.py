"""Chapter 3's claims (thesis 4.3): clustering of activations.

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
THESIS_TABLE_4_3_2 = pd.DataFrame({"layer_from": [0, 1, 2, 3, 4], "layer_to": [1, 2, 3, 4, 5],
                                   "hierarchical_accuracy": [0.19, 0.48, 0.50, 0.81, 0.998]})


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

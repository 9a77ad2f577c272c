"""Chapter 3's claims (thesis 4.3, appendix C.2.2): clustering of activations.

Every row is ``judge(effect, margin)``: accuracies against binomial standard errors, hierarchical
accuracy against a size-preserving random relabelling of the next layer's clusters, and the
agreement of two clusterings against shuffled ones.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .core import Z, binomial_se, difference_se, fmt, judge, table, unmeasurable

#: Clustering accuracy that counts as class-pure (thesis Table 4.3.1: 99.2% and 99.9% after the
#: collapse); a layer is judged pure when its accuracy exceeds this by more than Z binomial SEs.
CLUSTER_PURE = 0.99

#: Nesting is read on the scale from chance (0: no more nesting than a size-preserving random
#: relabelling of the next layer gives) to complete (1: every cluster inside one of the next layer).
#: "Clusters do not stay together" (4.3.3) means less than half of the room above chance is nested,
#: "they stay together" more than half: the midpoint is the one cut that favours neither reading.
NEST_HALF = 0.5

#: "Many" points excluded before the collapse, "few" after (4.3.2: 16-30% of the points in degenerate
#: clusters in layers 1-3, under 0.3% in layers 4-5): the excluded share must fall by more than this
#: at the collapse layer. A handful of points is no regime, however small its binomial error.
MANY_EXCLUDED = 0.05

#: Thesis Tables 4.3.1 and 4.3.2 (MLP-10 on CIFAR10, 50,000 points, cosine/complete at 0.7).
THESIS_TABLE_4_3_1 = pd.DataFrame({"layer": [0, 1, 2, 3, 4, 5], "avg_points": [11, 4.4, 4.2, 5.0, 18, 543],
                                   "accuracy": [0.45, 0.69, 0.77, 0.88, 0.992, 0.999],
                                   "excluded": [1997, 12791, 14861, 8062, 130, 6]})
THESIS_TABLE_4_3_2 = pd.DataFrame({"layer_from": [0, 1, 2, 3, 4], "layer_to": [1, 2, 3, 4, 5],
                                   "hierarchical_accuracy": [0.19, 0.48, 0.50, 0.81, 0.998]})

_CLAIMS = (
    ("Clustering accuracy rises from the input to the collapse layer",
     "4.3.2, Table 4.3.1: 45% at layer 0 to 99.2% at the collapse layer 4"),
    ("Before the collapse layer clusters are tiny and many points are excluded; from it on few are",
     "4.3.2, Table 4.3.1: 4-5 points per cluster and 16-30% of points excluded in layers 1-3; 130 and 6 of "
     "50,000 in layers 4-5"),
    (f"From the collapse layer on, clusters are class-pure (accuracy above {CLUSTER_PURE})",
     "4.3.2, Table 4.3.1: 99.2% and 99.9% in layers 4-5"),
    ("Before the collapse layer, clusters do not stay together from one layer to the next",
     "4.3.3, Table 4.3.2: 19%, 48%, 50%, 81% into layers 1-4"),
    ("From the collapse layer on, clusters stay together",
     "4.3.3, Table 4.3.2: 99.8% from layer 4 to 5"),
)


def nesting(hierarchy: pd.DataFrame, n_points: int) -> pd.DataFrame:
    """``hierarchy`` (``clustering.hierarchy_table``) with ``nesting`` = (H - chance) / (1 - chance),
    0 at chance and 1 when nested, and ``nesting_se``, its standard error from the binomial SE of H
    over ``n_points`` and the spread of the chance level."""
    h, chance, spread = hierarchy.hierarchical_accuracy, hierarchy.chance, hierarchy.chance_std
    room = (1 - chance).clip(lower=1e-12)
    se = np.sqrt(h * (1 - h) / n_points + spread ** 2) / room
    return hierarchy.assign(nesting=(h - chance) / room, nesting_se=se)


def chapter3(clusters: pd.DataFrame, hierarchy: pd.DataFrame, collapse: int | None,
             mean_similarity: dict[int, float] | None = None, threshold: float = 0.7) -> pd.DataFrame:
    """Thesis 4.3 on one run: ``clusters`` = ``clustering.clustering_table`` and ``hierarchy`` =
    ``clustering.hierarchy_table`` of the cosine/complete clustering cut at ``threshold``; ``collapse``
    its layer of collapse; ``mean_similarity``: {layer: ``clustering.class_mean_similarity``}, to leave
    out of the purity claim the layers where the cut cannot separate two classes at all."""
    c = clusters.set_index("layer").sort_index()
    kept_points = (c["clusters"] * c["avg_points"]).fillna(0).round().astype(int)
    n_points = int(kept_points.iloc[0] + c["excluded"].iloc[0])
    if collapse is None or collapse not in c.index:
        why = "no layer of collapse among the clustered layers"
        return table([unmeasurable(claim, thesis, "-", why) for claim, thesis in _CLAIMS])
    first, last = int(c.index.min()), int(c.index.max())
    rows = []

    # accuracy rises: the collapse layer against the first layer with any kept cluster
    start = c["accuracy"].first_valid_index()
    a0, ac = c.loc[start, "accuracy"], c.loc[collapse, "accuracy"]
    rows.append(judge(*_CLAIMS[0], f"layer {start}: {a0:.3f} -> layer {collapse}: {ac:.3f}", ac - a0,
                      Z * difference_se(ac, kept_points.loc[collapse], a0, kept_points.loc[start]),
                      f"{Z:g} binomial SEs of the difference"))

    # the pre-collapse regime: excluded share before against from the collapse layer on
    share = c["excluded"] / n_points
    before, after = share.loc[first:collapse - 1], share.loc[collapse:]
    if len(before) == 0:
        rows.append(unmeasurable(*_CLAIMS[1], f"collapse at the first clustered layer {collapse}",
                                 "no layer before the collapse layer"))
    else:
        size = c["avg_points"]
        n_before, n_after = n_points * len(before), n_points * len(after)
        laplace = lambda share, n: (share * n + 1) / (n + 2)             # no zero SE when nothing is excluded
        rows.append(judge(*_CLAIMS[1],
                          f"points per kept cluster in layers {first}-{last}: {fmt(size, 1)}; excluded share "
                          f"before the collapse {before.mean():.3f}, from it on {after.mean():.3f} (a fall of more "
                          f"than {MANY_EXCLUDED:g} is the thesis's regime)",
                          before.mean() - after.mean() - MANY_EXCLUDED,
                          Z * difference_se(laplace(before.mean(), n_before), n_before,
                                            laplace(after.mean(), n_after), n_after),
                          f"{Z:g} binomial SEs (Laplace-smoothed) of the difference of excluded shares"))

    # purity after collapse: the least pure layer from the collapse on whose class means the cut can
    # separate at all (two tight classes whose means are closer than the cut merge whatever the collapse)
    post = c.loc[collapse:]
    text = (f"accuracy in layers {collapse}-{last}: {fmt(post['accuracy'], 3)} "
            f"(kept clusters: {', '.join(str(int(k)) for k in post['clusters'])})")
    close = [l for l in post.index if mean_similarity is not None and mean_similarity[l] >= 1 - threshold]
    judged = post.drop(index=close)
    if close:
        text += (f"; left out: layers {', '.join(map(str, close))}, where two class means are closer than the cut "
                 f"(cosine similarity {fmt([mean_similarity[l] for l in close])} ≥ {1 - threshold:.2f})")
    if len(judged) == 0:
        rows.append(unmeasurable(*_CLAIMS[2], text, "in every layer from the collapse on two class means lie within "
                                 "the cut, so the clustering cannot separate their classes"))
    else:
        worst = judged["accuracy"].idxmin()
        n = kept_points.loc[worst]
        smoothed = (judged.loc[worst, "accuracy"] * n + 1) / (n + 2)     # Laplace: no zero SE at accuracy 1
        rows.append(judge(*_CLAIMS[2], text, judged.loc[worst, "accuracy"] - CLUSTER_PURE,
                          Z * binomial_se(smoothed, n),
                          f"{Z:g} binomial SEs of the least pure judged layer ({worst})"))

    # nesting against the size-preserving relabelling
    nest = nesting(hierarchy, n_points).set_index("layer_to")
    pre, kept = nest.loc[:collapse], nest.loc[collapse + 1:]
    steps = lambda frame: "; ".join(f"{int(r.layer_from)}→{int(i)}: H {r.hierarchical_accuracy:.3f}, chance "
                                    f"{r.chance:.3f}, nesting {r.nesting:.2f}" for i, r in frame.iterrows())
    if len(pre) == 0:
        rows.append(unmeasurable(*_CLAIMS[3], f"collapse at the first clustered layer {collapse}",
                                 "no step before the collapse layer"))
    else:
        rows.append(judge(*_CLAIMS[3], f"steps into layers {int(pre.index.min())}-{collapse}: {steps(pre)}",
                          NEST_HALF - pre["nesting"].mean(), Z * math.sqrt((pre["nesting_se"] ** 2).sum()) / len(pre),
                          f"{Z:g} SEs of the mean nesting (binomial SE of H and spread of its chance level); "
                          f"{NEST_HALF:g} = half-way from size-preserving relabelling to complete nesting"))
    text = f"steps from layer {collapse} on: {steps(kept)}"
    if close:
        text += f"; left out: steps from layers {', '.join(map(str, close))} (class means within the cut)"
        kept = kept[~kept.layer_from.isin(close)]
    if len(kept) == 0:
        rows.append(unmeasurable(*_CLAIMS[4], text, "no step after the collapse layer from a layer the cut can "
                                 "separate"))
    else:
        least = kept["nesting"].idxmin()
        rows.append(judge(*_CLAIMS[4], text,
                          kept.loc[least, "nesting"] - NEST_HALF, Z * kept.loc[least, "nesting_se"],
                          f"{Z:g} SEs of the least nested step (into {least}); {NEST_HALF:g} = half-way from "
                          f"size-preserving relabelling to complete nesting"))
    return table(rows)


def metric_agreement(agreement: pd.DataFrame) -> pd.DataFrame:
    """Appendix C.2.2's "the metric does not matter" as one row. ``agreement``: one row per layer
    with columns layer, ari, chance, chance_std (``clustering.clustering_agreement`` of the
    cosine/complete and Euclidean/Ward clusterings)."""
    claim = "Cosine/complete and Euclidean/Ward clusterings agree beyond chance"
    thesis = "C.2.2: 'a change of metric is not hugely impactful'; Tables C.2.1-C.2.2 against 4.3.1-4.3.2"
    if len(agreement) == 0:
        return table([unmeasurable(claim, thesis, "-", "no layer clustered both ways")])
    excess = agreement["ari"] - agreement["chance"]
    run = "adjusted Rand index per layer " + ", ".join(
        f"{int(r.layer)}: {r.ari:.2f}" for r in agreement.itertuples()) + f" (chance {agreement['chance'].mean():.3f})"
    return table([judge(claim, thesis, run, excess.mean(),
                        Z * math.sqrt((agreement["chance_std"] ** 2).sum()) / len(agreement),
                        f"{Z:g} SDs of the mean ARI of size-preserving shuffles")])


def thesis_tables_4_3(clusters: pd.DataFrame, hierarchy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This run's Tables 4.3.1 and 4.3.2 beside the thesis's, joined on the layer (thesis columns suffixed)."""
    ours = clusters[["layer", "clusters", "avg_points", "accuracy", "excluded"]]
    return (ours.merge(THESIS_TABLE_4_3_1, on="layer", how="left", suffixes=("", " (thesis)")),
            hierarchy.merge(THESIS_TABLE_4_3_2, on=["layer_from", "layer_to"], how="left", suffixes=("", " (thesis)")))

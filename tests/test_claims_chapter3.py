"""Chapter 3's rules (thesis 4.3, C.2.2) on tables whose truth is known, and their chance baselines."""
import importlib
import itertools

import numpy as np
import pandas as pd
import pytest

from inc_utils import claims as K
from inc_utils import clustering as CL

C3 = importlib.import_module("inc_utils.claims.chapter3")
N = 5000


def test_relabelling_baseline_matches_brute_force():
    a = np.array([0, 0, 0, 1, 1, 2, 2])
    b = np.array([0, 0, 1, 1, 1, 2, 3])
    exact = np.mean([CL.hierarchical_accuracy(a, b[list(p)]) for p in itertools.permutations(range(len(b)))])
    mean, sd = CL.relabelled_hierarchical_accuracy(a, b, draws=3000, seed=1)
    assert mean == pytest.approx(exact, abs=4 * sd / np.sqrt(3000))
    one = CL.relabelled_hierarchical_accuracy(a, np.zeros(7, int), draws=5)   # one next cluster: nested by chance
    assert one == (1.0, 0.0)


def test_hierarchy_table_carries_the_chance_level():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 50, 2000)
    coarse = a // 10                                           # nested by construction
    table = CL.hierarchy_table({0: a, 1: coarse, 2: rng.integers(0, 5, 2000)})
    assert table.hierarchical_accuracy[0] == 1.0 and table.chance[0] < 0.6
    assert table.hierarchical_accuracy[1] == pytest.approx(table.chance[1], abs=4 * table.chance_std[1])


def test_agreement_of_identical_and_unrelated_clusterings():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 10, 1000)
    ari, chance, spread = CL.clustering_agreement(a, a)
    assert ari == 1.0 and abs(chance) < 4 * spread
    ari, chance, spread = CL.clustering_agreement(a, rng.integers(0, 10, 1000))
    assert abs(ari - chance) < 5 * spread


def _clusters(accuracy, excluded, avg_points):
    clusters = [round((N - e) / p) for e, p in zip(excluded, avg_points)]
    return pd.DataFrame({"layer": range(len(accuracy)), "clusters": clusters,
                         "avg_points": [(N - e) / k for e, k in zip(excluded, clusters)],
                         "accuracy": accuracy, "excluded": excluded})


def _hierarchy(h, chance, spread=0.003):
    return pd.DataFrame({"layer_from": range(len(h)), "layer_to": range(1, len(h) + 1), "hierarchical_accuracy": h,
                         "chance": chance, "chance_std": spread})


def test_a_run_that_behaves_like_the_thesis_holds_every_claim():
    clusters = _clusters([0.45, 0.7, 0.88, 0.995, 0.999, 0.999], [1000, 1500, 800, 20, 5, 2], [5, 4, 5, 50, 500, 500])
    hierarchy = _hierarchy([0.2, 0.45, 0.85, 0.999, 0.999], [0.15, 0.3, 0.8, 0.5, 0.5])
    table = K.chapter3(clusters, hierarchy, collapse=3)
    assert list(table.columns) == list(K.COLUMNS)
    assert (table.holds == K.YES).all(), table[["claim", "effect", "margin", "holds"]]


def test_the_opposite_run_fails_every_claim():
    clusters = _clusters([0.9, 0.8, 0.7, 0.6, 0.6, 0.6], [10, 10, 10, 800, 900, 900], [50, 50, 50, 5, 5, 5])
    hierarchy = _hierarchy([0.99, 0.99, 0.99, 0.3, 0.3], [0.2, 0.2, 0.2, 0.3, 0.3])   # nested before, chance after
    table = K.chapter3(clusters, hierarchy, collapse=3)
    assert (table.holds == K.NO).all(), table[["claim", "effect", "margin", "holds"]]


def test_differences_within_noise_are_not_measurable():
    clusters = _clusters([0.989, 0.99, 0.99, 0.99, 0.99, 0.99], [500, 500, 500, 500, 502, 499], [5] * 6)
    hierarchy = _hierarchy([0.6, 0.6, 0.6, 0.6, 0.6], [0.2] * 5)                        # nesting exactly 0.5
    table = K.chapter3(clusters, hierarchy, collapse=3)
    regime = table.claim.str.startswith("Before the collapse layer clusters are tiny")
    # equal excluded shares on both sides are no pre-collapse regime (it needs a fall of MANY_EXCLUDED)
    assert (table.holds[regime] == K.NO).all()
    assert (table.holds[~regime] == K.NOT_MEASURABLE).all(), table[["claim", "effect", "margin", "holds"]]


def test_a_handful_of_excluded_points_is_no_pre_collapse_regime():
    # the cpu run: 5 of 15,000 point-layers excluded before the collapse, none after; binomially
    # "significant", but 0.03% of the points against the thesis's 16-30%
    clusters = _clusters([0.6, 0.8, 0.9, 0.99, 0.99, 0.99], [2, 2, 1, 0, 0, 0], [80, 150, 150, 400, 500, 500])
    hierarchy = _hierarchy([0.6, 0.6, 0.9, 0.99, 0.99], [0.14, 0.12, 0.13, 0.12, 0.12])
    row = K.chapter3(clusters, hierarchy, collapse=3).iloc[1]
    assert row.claim.startswith("Before the collapse layer clusters are tiny") and row.holds == K.NO


def test_no_collapse_layer_is_not_measurable():
    clusters = _clusters([0.5] * 3, [10] * 3, [5] * 3)
    table = K.chapter3(clusters, _hierarchy([0.5, 0.5], [0.2, 0.2]), collapse=None)
    assert (table.holds == K.NOT_MEASURABLE).all() and len(table) == len(C3._CLAIMS)


def test_metric_agreement_is_judged_against_shuffles():
    frame = lambda ari: pd.DataFrame({"layer": [0, 1], "ari": ari, "chance": [0.0, 0.0], "chance_std": [0.002, 0.002]})
    assert C3.metric_agreement(frame([0.6, 0.8])).holds[0] == K.YES
    assert C3.metric_agreement(frame([-0.3, -0.2])).holds[0] == K.NO
    assert C3.metric_agreement(frame([0.001, -0.001])).holds[0] == K.NOT_MEASURABLE


def test_purity_leaves_out_layers_whose_class_means_lie_within_the_cut():
    clusters = _clusters([0.45, 0.7, 0.88, 0.995, 0.7, 0.999], [1000, 1500, 800, 20, 5, 2], [5, 4, 5, 50, 500, 500])
    hierarchy = _hierarchy([0.2, 0.45, 0.85, 0.999, 0.999], [0.15, 0.3, 0.8, 0.5, 0.5])
    similar = {layer: 0.1 for layer in range(6)}
    assert K.chapter3(clusters, hierarchy, 3, similar).holds[2] == K.NO
    row = K.chapter3(clusters, hierarchy, 3, {**similar, 4: 0.35})
    assert row.holds[2] == K.YES and "left out: layers 4" in row.this_run[2]
    broken = _hierarchy([0.2, 0.45, 0.85, 0.999, 0.3], [0.15, 0.3, 0.8, 0.5, 0.3])   # 4→5 leaves a merged layer
    assert K.chapter3(clusters, broken, 3, similar).holds[4] == K.NO
    assert K.chapter3(clusters, broken, 3, {**similar, 4: 0.35}).holds[4] == K.YES
    assert K.chapter3(clusters, hierarchy, 3, {l: 0.5 for l in range(6)}).holds[2] == K.NOT_MEASURABLE


def test_class_mean_similarity_sees_the_shared_component():
    y = np.repeat([0, 1], 50)
    A = np.where(y[:, None] == 0, [1.0, 0.0, 5.0], [0.0, 1.0, 5.0])        # two classes on a common offset
    assert CL.class_mean_similarity(A, y) == pytest.approx(25 / 26)
    assert CL.class_mean_similarity(A, y, centre=True) == pytest.approx(-1.0)

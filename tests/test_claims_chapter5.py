"""Chapter 5's rules (thesis 5.1, 5.3, 5.5.1) on tables whose truth is known."""
import numpy as np
import pandas as pd

from inc_utils import claims as K

N_TEST = 10000


def _layers(ncc, ridge, net=0.9):
    """A layer_table of accuracies per layer (multiply-adds growing linearly with the layer)."""
    n = len(ncc)
    rows = [(-1, "network", net, 1.0)] + [(layer, head, acc, (layer + 1) / n)
                                           for head, accs in (("ncc", ncc), ("ridge", ridge))
                                           for layer, acc in enumerate(accs)]
    return pd.DataFrame(rows, columns=["layer", "head", "accuracy", "macs_frac"])


def _sweep(collapse, keeps, seeds=2):
    """Sweep rows: one hyperparameter setting per entry, ``seeds`` runs each with the same layers."""
    rows = [dict(architecture="MLP-8", lr=0.01 * (i + 1), weight_decay=1e-3, seed=s, collapse_layer=c,
                 keeps_ridge=k, keeps_ncc=k, num_layers=9)
            for i, (c, k) in enumerate(zip(collapse, keeps)) for s in range(seeds)]
    return pd.DataFrame(rows)


def test_a_network_whose_collapse_layer_is_where_to_cut_holds_every_claim():
    layers = _layers(ncc=[0.5, 0.7, 0.85, 0.9, 0.9], ridge=[0.6, 0.75, 0.86, 0.902, 0.903])
    table = K.chapter5(layers, collapse=3, n_test=N_TEST, sweep=_sweep(range(1, 9), range(1, 9)))
    assert list(table.columns) == list(K.COLUMNS)
    assert (table.holds == K.YES).all(), table[["claim", "effect", "margin", "holds"]]
    assert "saves 20% of the multiply-adds" in table.this_run[0]


def test_cutting_at_the_collapse_layer_that_loses_accuracy_fails():
    layers = _layers(ncc=[0.5, 0.7, 0.8, 0.85, 0.9], ridge=[0.6, 0.89, 0.9, 0.85, 0.9])
    table = K.chapter5(layers, collapse=3, n_test=N_TEST, sweep=_sweep(range(1, 9), range(8, 0, -1)))
    assert (table.holds == K.NO).all(), table[["claim", "effect", "margin", "holds"]]


def test_differences_within_the_binomial_error_are_not_measurable():
    layers = _layers(ncc=[0.5, 0.8, 0.89, 0.89, 0.9], ridge=[0.6, 0.8, 0.89, 0.89, 0.9])
    table = K.chapter5(layers, collapse=3, n_test=N_TEST)
    assert (table.holds.iloc[:3] == K.NOT_MEASURABLE).all(), table[["claim", "effect", "margin", "holds"]]
    rng = np.random.default_rng(0)
    unrelated = _sweep(rng.integers(1, 9, 8), rng.integers(1, 9, 8))
    assert K.chapter5(layers, 3, N_TEST, unrelated).holds.iloc[3] != K.YES


def test_no_collapse_and_no_sweep_are_not_measurable():
    table = K.chapter5(_layers(ncc=[0.5, 0.9], ridge=[0.5, 0.9]), collapse=None, n_test=N_TEST, sweep=None)
    assert (table.holds == K.NOT_MEASURABLE).all() and len(table) == 5


def test_sweep_rows_rank_never_after_the_last_layer_and_group_by_setting():
    from inc_utils.claims.chapter5 import sweep_rows
    rows = pd.DataFrame({"lr": [0.1, 0.1, 0.2, 0.3], "weight_decay": 1e-3,
                         "collapse_layer": pd.array([1, 2, None, 3], dtype="Int64"),
                         "keeps_ridge": pd.array([1, 2, None, 2], dtype="Int64"), "num_layers": 5})
    x, y, groups = sweep_rows(rows, "ridge")
    assert x.tolist() == [1, 2, 5, 3] and y.tolist() == [1, 2, 5, 2]
    assert len(set(groups)) == 3 and groups[0] == groups[1]

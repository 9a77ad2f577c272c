"""Chapter 2's rules (thesis 4.2) on hand-made sweeps whose truth is known: true -> yes, false -> no,
within noise -> not yes."""
import importlib
import math

import numpy as np
import pandas as pd
import pytest

from inc_utils import claims as K

C2 = importlib.import_module("inc_utils.claims.chapter2")
N_TEST = 10_000


def _summary(rows):
    return pd.DataFrame(rows, columns=["lr", "weight_decay", "seed", "test_acc", "collapse_layer"]).assign(
        included=True).astype({"collapse_layer": "Int64"})


def _table(rows, **kw):
    return K.chapter2(_summary(rows), num_layers=9, n_test=N_TEST, **kw)


def _row(table, start):
    rows = table[table.claim.str.startswith(start)]
    assert len(rows) == 1, (start, table.claim.tolist())
    return rows.iloc[0]


def _sweep(depth_acc: dict[float, tuple[float, float]], seeds=(0, 1), jitter=0.001):
    """One pair per lr: (collapse layer, test accuracy) the same for every seed, accuracy jittered by ``jitter``."""
    return [(lr, 1e-3, s, acc + jitter * s, depth) for lr, (depth, acc) in depth_acc.items() for s in seeds]


# an inverted U: the best pair collapses at layer 4, worse ones at 2 and 7; later collapse overall worse
MIDDLE = {0.005: (8, 0.80), 0.01: (7, 0.84), 0.02: (4, 0.88), 0.05: (2, 0.85), 0.1: (6, 0.82)}


def test_a_sweep_that_shows_the_thesis_holds():
    table = _table(_sweep(MIDDLE))
    assert list(table.columns) == list(K.COLUMNS)
    for start in ("The layer of collapse moves", "Seeds of one hyperparameter pair agree on the collapse",
                  "Seeds of one hyperparameter pair agree on the test", "The best-generalising pair"):
        assert _row(table, start).holds == K.YES, start
    assert "lr 0.02, wd 0.001" in _row(table, "The best-generalising pair").this_run


def test_the_best_at_one_end_is_no_and_a_tie_is_not_measurable():
    monotone = {0.005: (8, 0.80), 0.01: (7, 0.84), 0.02: (4, 0.86), 0.05: (2, 0.88)}
    assert _row(_table(_sweep(monotone)), "The best-generalising pair").holds == K.NO
    # issue 18's smoke case: two pairs tie at 711/720 correct: no verdict either way
    tie = {0.005: (8, 0.80), 0.01: (6, 711 / 720), 0.05: (3, 711 / 720)}
    row = _row(K.chapter2(_summary(_sweep(tie, jitter=0)), num_layers=9, n_test=720), "The best-generalising pair")
    assert row.holds == K.NOT_MEASURABLE and row.effect == 0


def test_correlation_is_signed_in_the_thesis_direction():
    later_worse = {lr: (d, 0.9 - 0.01 * d) for lr, d in zip((0.005, 0.01, 0.02, 0.05, 0.1, 0.2), (1, 2, 3, 5, 6, 8))}
    assert _row(_table(_sweep(later_worse)), "Later collapse goes with higher").holds == K.YES
    later_better = {lr: (d, 0.8 + 0.01 * d) for lr, (d, _) in later_worse.items()}
    row = _row(_table(_sweep(later_better)), "Later collapse goes with higher")
    assert row.holds == K.NO and "later collapse, lower error" in row.this_run
    rng = np.random.default_rng(1)                     # depth and accuracy drawn independently
    rows = [(lr, wd, s, 0.85 + 0.01 * rng.standard_normal(), int(rng.integers(1, 9)))
            for lr in (0.005, 0.01, 0.02) for wd in (1e-4, 1e-3) for s in (0, 1)]
    assert _row(_table(rows), "Later collapse goes with higher").holds != K.YES


def test_seeds_that_disagree_are_no_and_random_layers_are_not_yes():
    # seeds of each pair land far apart (1 and 8) while the pair means are all 4.5: seeds agree less than
    # randomly grouped runs, and the pairs do not move the layer
    rows = [(lr, 1e-3, s, 0.85, 1 if s == 0 else 8) for lr in np.geomspace(0.001, 0.2, 8) for s in (0, 1)]
    table = _table(rows)
    assert _row(table, "Seeds of one hyperparameter pair agree on the collapse").holds == K.NO
    assert _row(table, "The layer of collapse moves").holds == K.NO
    rng = np.random.default_rng(0)                     # collapse layers drawn at random, whatever the pair
    rows = [(lr, wd, s, 0.85, int(rng.integers(1, 9))) for lr in (0.005, 0.01, 0.02) for wd in (1e-4, 1e-3)
            for s in (0, 1)]
    table = _table(rows)
    for start in ("The layer of collapse moves", "Seeds of one hyperparameter pair agree on the collapse"):
        assert _row(table, start).holds != K.YES, start


def test_same_layer_different_accuracy_against_binomial_and_seed_noise():
    wide = [(0.01, 1e-3, s, 0.88, 4) for s in (0, 1)] + [(0.1, 1e-3, s, 0.80, 4) for s in (0, 1)]
    row = _row(_table(wide), "Runs with the same collapse layer")
    assert row.holds == K.YES and row.effect == pytest.approx(0.08)
    # 0.3 points apart: under 2 binomial SE of the difference on 10,000 test images (~0.9 points)
    close = [(0.01, 1e-3, s, 0.880, 4) for s in (0, 1)] + [(0.1, 1e-3, s, 0.877, 4) for s in (0, 1)]
    assert _row(_table(close), "Runs with the same collapse layer").holds == K.NOT_MEASURABLE
    # 5 points apart at one layer, but seeds of one pair already differ by 6: not beyond seed noise
    noisy = [(0.01, 1e-3, 0, 0.88, 4), (0.01, 1e-3, 1, 0.82, 5), (0.1, 1e-3, 0, 0.83, 4), (0.1, 1e-3, 1, 0.83, 5)]
    assert _row(_table(noisy), "Runs with the same collapse layer").holds == K.NOT_MEASURABLE


def test_many_runs_of_one_accuracy_are_not_very_different():
    # 22 runs at one layer whose test accuracies are one true 0.84 plus test-set sampling (n = 10,000):
    # their range exceeds 2 SE of one difference (~1.0 point) by chance, but not the sampling null's range
    rng = np.random.default_rng(0)
    accs = rng.binomial(10_000, 0.84, 22) / 10_000
    runs = [(0.01 * (1 + i // 2), 1e-3, i % 2, a, 9) for i, a in enumerate(accs)]
    row = _row(_table(runs), "Runs with the same collapse layer")
    assert row.effect > 2 * math.hypot(*(2 * [math.sqrt(0.84 * 0.16 / 10_000)]))
    assert row.holds != K.YES
    null = C2.sampling_range([22], [0.84], 10_000)
    assert 0.012 < null < 0.022                                    # ~4.6 SD of one accuracy (SD 0.0037)


def test_too_small_a_design_is_not_measurable_with_a_reason():
    table = _table([(0.01, 1e-3, 0, 0.8, None)])
    assert (table.holds == K.NOT_MEASURABLE).all()
    assert table.basis.str.len().gt(0).all()


def test_label_prefixes_every_claim():
    assert _table(_sweep(MIDDLE), label="MLP-8").claim.str.startswith("MLP-8: ").all()


def test_shuffled_baseline_and_pair_se():
    values, groups = np.r_[np.zeros(4), np.ones(4)], [0] * 4 + [1] * 4
    assert C2.spread_of_means(values, groups) == pytest.approx(0.5)
    mean, sd = C2.shuffled_baseline(values, groups, C2.spread_of_means, shuffles=500)
    assert mean < 0.3 and sd > 0                     # shuffled, the two groups' means are mostly close
    assert C2.within_range([1, 3, 2, 2], [0, 0, 1, 1]) == pytest.approx(1.0)
    assert C2.pair_se(0.9, float("nan"), 1, 10_000) == pytest.approx(0.003)
    assert C2.pair_se(0.9, 0.004, 2, 10_000) == pytest.approx(np.hypot(0.003, 0.004 / np.sqrt(2)))

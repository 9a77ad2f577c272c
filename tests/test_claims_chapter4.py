"""Chapter 4's rules (thesis 4.4) on synthetic layers whose truth is known, and their baselines."""
import math

import numpy as np
import pandas as pd
import pytest

from inc_utils import claims as K
from inc_utils import spectra as SP
import importlib

C4 = importlib.import_module("inc_utils.claims.chapter4")

C, PER, D = 10, 60, 64


def _relu_gaussian(rng, scale, shift=0.25):
    """Pre-collapse-like layer: ReLU of shifted Gaussians (sparsity ≈ Φ(shift)), non-zero values × scale."""
    return scale * np.maximum(rng.standard_normal((C * PER, D)) - shift, 0)


def _collapsed(rng, scale=1.0, noise=0.01):
    """Post-collapse-like layer: class-constant ReLU patterns (a fifth of the neurons dead, a fifth
    on for every class, the rest on for a random subset of classes) with small multiplicative noise."""
    on = rng.random((C, D)) < 0.5
    on[:, : D // 5] = False
    on[:, D // 5: 2 * D // 5] = True
    means = np.where(on, scale * (1 + rng.random((C, D))), 0.0)
    X = np.repeat(means, PER, axis=0)
    return X * (1 + noise * rng.standard_normal(X.shape))


def _tables(layers: dict):
    """The chapter-4 inputs computed by spectra from {layer: activations}."""
    components = {l: SP.components_to(SP.pca_spectrum(A)) for l, A in layers.items()}
    draws = {l: SP.components_bootstrap(A, draws=10) for l, A in layers.items()}
    return (components, draws, SP.spectrum_table(layers), SP.leading_direction_table(layers),
            SP.neuron_table(layers))


def _verdicts(layers: dict, collapse: int) -> dict:
    table = K.chapter4(*_tables(layers), collapse=collapse, num_classes=C)
    keys = list(C4._CLAIMS)
    assert len(table) == len(keys)
    return dict(zip(keys, table.holds))


def test_random_direction_dimensionality_is_exact():
    mean, sd = SP.random_direction_dimensionality(256)
    assert mean == pytest.approx(256 - 1 + math.pi / 2) and sd == pytest.approx(8.5, abs=0.1)
    assert sd == pytest.approx(math.sqrt(2 * (math.pi - 3) * 256), rel=0.01)
    rng = np.random.default_rng(0)
    g = rng.standard_normal((40000, 16))
    dims = SP.corresponding_dimensionality((g / np.linalg.norm(g, axis=1, keepdims=True)).T)
    mean16, sd16 = SP.random_direction_dimensionality(16)
    assert dims.mean() == pytest.approx(mean16, abs=0.03) and dims.std() == pytest.approx(sd16, rel=0.02)


def test_random_basis_mean_matches_one_direction_and_shrinks_its_spread():
    mean, sd = SP.random_basis_dimensionality(64, 64, draws=40)
    one_mean, one_sd = SP.random_direction_dimensionality(64)
    assert mean == pytest.approx(one_mean, abs=3 * sd) and sd < one_sd / 4


def test_leading_direction_of_non_negative_data_is_the_mean():
    rng = np.random.default_rng(1)
    A = _relu_gaussian(rng, 1.0)
    table = SP.leading_direction_table({1: A})
    assert table.cosine_with_mean[0] > 0.95
    assert table.leading_dim[0] > SP.random_direction_dimensionality(D)[0] + 5 * SP.random_direction_dimensionality(D)[1]


def test_dead_neurons_leave_the_leading_direction_and_its_baseline():
    rng = np.random.default_rng(3)
    A = _relu_gaussian(rng, 1.0)
    A[:, : D // 2] = 0                                              # half the neurons dead
    table = SP.leading_direction_table({1: A})
    assert table.live[0] == D // 2 and table.width[0] == D
    # close to flat over the live half (a flat unit vector over k coordinates has π k / 2): flatter than
    # a random direction over the live neurons, yet below one over all D, which would read as "no bias"
    assert table.leading_dim[0] == pytest.approx(math.pi / 2 * (D // 2), rel=0.05)
    live_mean, live_sd = SP.random_direction_dimensionality(D // 2)
    all_mean, all_sd = SP.random_direction_dimensionality(D)
    assert table.leading_dim[0] > live_mean + 2 * live_sd and table.leading_dim[0] < all_mean - 2 * all_sd


def test_step_distance_and_bootstrap_of_a_low_rank_layer():
    assert SP.step_distance(np.array([0.3, 0.35, 0.98]), 10) == pytest.approx([0.0, 0.05, 0.02])
    rng = np.random.default_rng(2)
    A = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 32))
    assert set(SP.components_bootstrap(A, draws=5)) <= {3, 4}


def test_a_network_that_collapses_at_layer_3_holds_every_claim():
    rng = np.random.default_rng(3)
    layers = {1: _relu_gaussian(rng, 1.0), 2: _relu_gaussian(rng, 0.3), 3: _collapsed(rng), 4: _collapsed(rng)}
    verdicts = _verdicts(layers, 3)
    assert verdicts == {key: K.YES for key in C4._CLAIMS}


def test_the_reversed_network_fails_the_directional_claims():
    rng = np.random.default_rng(4)
    layers = {1: _collapsed(rng, 0.3), 2: _collapsed(rng, 1.0), 3: _relu_gaussian(rng, 1.0), 4: _relu_gaussian(rng, 1.0)}
    verdicts = _verdicts(layers, 3)
    for key in ("pca", "aligned", "spread", "extreme", "shift"):
        assert verdicts[key] == K.NO, key


def test_one_distribution_before_and_after_gives_no_yes_to_the_comparisons():
    rng = np.random.default_rng(5)
    layers = {l: _relu_gaussian(rng, 1.0, shift=0.126) for l in (1, 2, 3, 4)}   # sparsity ≈ 0.55: between steps
    verdicts = _verdicts(layers, 3)
    for key in ("pca", "aligned", "spread", "extreme", "shift"):
        assert verdicts[key] != K.YES, key
    assert verdicts["steps"] == K.NO and verdicts["tight"] == K.YES and verdicts["bias"] == K.YES


def test_no_collapse_is_not_measurable():
    rng = np.random.default_rng(6)
    layers = {1: _relu_gaussian(rng, 1.0), 2: _relu_gaussian(rng, 1.0)}
    table = K.chapter4(*_tables(layers), collapse=None, num_classes=C)
    assert (table.holds == K.NOT_MEASURABLE).all() and len(table) == len(C4._CLAIMS)


def test_pca_shift_is_not_judged_when_the_trend_alone_reaches_c_minus_1():
    halving = {1: 400, 2: 200, 3: 100, 4: 40, 5: 38}                # the trend alone: 100 -> ~35
    effect, _, _, floored = C4.pca_shift(halving, {l: np.full(5, c) for l, c in halving.items()}, 4, C)
    assert not floored and effect == pytest.approx(math.log10(100 / 2 ** 1.5) - np.mean(np.log10([40, 38])))
    steady = {1: 400, 2: 300, 3: 225, 4: 20, 5: 18}                 # the trend alone: 225 -> ~146
    effect, _, _, floored = C4.pca_shift(steady, {l: np.full(5, c) for l, c in steady.items()}, 4, C)
    assert not floored and effect > 0.8
    fast = {1: 2000, 2: 200, 3: 20, 4: 10, 5: 10}                   # the trend predicts 2 < C−1 components
    *_, floored = C4.pca_shift(fast, {l: np.full(5, c) for l, c in fast.items()}, collapse=4, num_classes=C)
    assert floored

import numpy as np
import pytest

from inc_utils.spectra import (
    components_to, corresponding_dimensionality, covariance, l1_norms, neuron_sparsity,
    neuron_table, nonzero_stats, pca, pca_spectrum, principal_directions, random_orthonormal,
    sorted_neuron_stats, spectrum_table, tail_share,
)

# Neurons: always 0; half zero; never zero; 4 of 6 zero.
A = np.array([[0, 1, 1, 0],
              [0, 2, 1, 4],
              [0, 3, 1, 0],
              [0, 0, 1, 0],
              [0, 0, 1, 0],
              [0, 0, 1, 8]], dtype=np.float32)


def activations(n=500, d=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)) @ rng.standard_normal((5, d)) + 0.1 * rng.standard_normal((n, d))
    return np.maximum(X + 3, 0).astype(np.float32)


@pytest.mark.parametrize("block", [37, 4096])
def test_pca_spectrum_matches_numpy(block):
    X = activations()
    ref = np.sort(np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False)))[::-1]
    eigs = pca_spectrum(X, block=block)
    np.testing.assert_allclose(eigs, np.clip(ref, 0, None), rtol=1e-9, atol=1e-12)
    assert (np.diff(eigs) <= 0).all()


def test_pca_directions_and_input_untouched():
    X = activations().astype(np.float64)
    before = X.copy()
    eigs, V = pca(X, block=64)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_allclose(V.T @ V, np.eye(24), atol=1e-12)
    np.testing.assert_allclose(covariance(X) @ V[:, :3], V[:, :3] * eigs[:3], atol=1e-9)
    np.testing.assert_array_equal(principal_directions(X, 3, block=64), V[:, :3])


def test_tail_share_and_components_to():
    eigs = np.array([50, 30, 15, 4.5, 0.3, 0.2])
    np.testing.assert_allclose(tail_share(eigs), [0.5, 0.2, 0.05, 0.005, 0.002, 0], atol=1e-15)
    assert components_to(eigs) == 4
    assert components_to(eigs, level=0.1) == 3


def test_l1_and_corresponding_dimensionality_extremes():
    d = 100
    U = np.stack([np.eye(d)[3], np.full(d, d ** -0.5)], axis=1)
    np.testing.assert_allclose(l1_norms(U), [1, np.sqrt(d)])
    np.testing.assert_allclose(corresponding_dimensionality(U), [np.pi / 2, np.pi * d / 2])


@pytest.mark.parametrize("k", [1, 2, 10, 50])
def test_corresponding_dimensionality_of_coordinate_subsphere(k):
    # u uniform on the unit sphere of the first k of d = 80 coordinates:
    # E pi ||u||_1^2 / 2 = pi/2 (1 + 2 (k - 1) / pi) = k - 1 + pi/2.
    rng = np.random.default_rng(k)
    U = np.zeros((80, 20000))
    U[:k] = rng.standard_normal((k, 20000))
    U /= np.linalg.norm(U, axis=0)
    dims = corresponding_dimensionality(U)
    assert abs(dims.mean() - (k - 1 + np.pi / 2)) < 5 * dims.std() / np.sqrt(len(dims)) + 1e-12


def test_random_orthonormal_baseline():
    d = 1024
    Q = random_orthonormal(d, d, seed=1)
    np.testing.assert_allclose(Q.T @ Q, np.eye(d), atol=1e-12)
    np.testing.assert_array_equal(Q, random_orthonormal(d, d, seed=1))
    assert random_orthonormal(d, 5, seed=0).shape == (d, 5)
    norms = l1_norms(Q)  # thesis eq 3.3: mean sqrt(2d/pi), std sqrt(1 - 3/pi)
    assert norms.mean() == pytest.approx(np.sqrt(2 * d / np.pi), abs=0.03)
    assert norms.std() == pytest.approx(np.sqrt(1 - 3 / np.pi), rel=0.1)


def test_neuron_sparsity_and_nonzero_stats():
    np.testing.assert_allclose(neuron_sparsity(A), [1, 0.5, 0, 4 / 6])
    for block in (2, 4096):
        mean, std = nonzero_stats(A, block=block)
        np.testing.assert_allclose(mean, [np.nan, 2, 1, 6])
        np.testing.assert_allclose(std, [np.nan, np.sqrt(2 / 3), 0, 2])


def test_sorted_neuron_stats():
    df = sorted_neuron_stats(A)
    assert list(df.columns) == ["rank", "neuron", "sparsity", "mean", "std"]
    np.testing.assert_array_equal(df.neuron, [2, 1, 3, 0])
    np.testing.assert_allclose(df.sparsity, [0, 0.5, 4 / 6, 1])
    np.testing.assert_allclose(df["mean"], [1, 2, 6, np.nan])
    np.testing.assert_allclose(df["std"], [0, np.sqrt(2 / 3), 2, np.nan])


def test_tables():
    acts = {0: activations(seed=0), 3: activations(d=16, seed=1)}
    spec = spectrum_table(acts)
    assert len(spec) == 24 + 16
    layer3 = spec[spec.layer == 3]
    eigs, V = pca(acts[3])
    np.testing.assert_allclose(layer3.eigenvalue, eigs)
    np.testing.assert_allclose(layer3.corresponding_dim, corresponding_dimensionality(V))
    np.testing.assert_allclose(layer3.random_l1, l1_norms(random_orthonormal(16, 16)))
    assert components_to(layer3.eigenvalue.to_numpy()) == 1 + np.argmax(layer3.tail_share < 0.01)
    neurons = neuron_table(acts)
    assert list(neurons.columns) == ["layer", "rank", "neuron", "sparsity", "mean", "std"]
    assert neurons.groupby("layer").size().to_dict() == {0: 24, 3: 16}
    np.testing.assert_allclose(neurons[neurons.layer == 3].sparsity,
                               sorted_neuron_stats(acts[3]).sparsity)

"""PCA spectra, l1 sparsity of principal directions and neuron sparsity (thesis 3.5, 4.4).

Covariances and per-neuron statistics are accumulated in float64 over row blocks, so a
(60k, 1024) float32 layer never gets a full float64 copy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _row_blocks(A: np.ndarray, block: int):
    """Yield consecutive (<= block, d) float64 copies of the rows of A: (N, d)."""
    for s in range(0, len(A), block):
        yield np.array(A[s:s + block], dtype=np.float64)


def covariance(A: np.ndarray, block: int = 4096) -> np.ndarray:
    """(d, d) float64 sample covariance (ddof=1, as ``np.cov``) of A: (N, d) activations."""
    mean = np.sum(A, axis=0, dtype=np.float64) / len(A)
    C = np.zeros((A.shape[1], A.shape[1]))
    for X in _row_blocks(A, block):
        X -= mean
        C += X.T @ X
    return C / (len(A) - 1)


def pca(A: np.ndarray, block: int = 4096):
    """Principal components of A: (N, d) activations (thesis eq 3.2).

    Returns eigenvalues (d,) of the covariance, descending and clipped at 0 (rounding),
    and the matching unit eigenvectors as the columns of V: (d, d).
    """
    eigs, V = np.linalg.eigh(covariance(A, block))
    return np.clip(eigs[::-1], 0.0, None), V[:, ::-1]


def pca_spectrum(A: np.ndarray, block: int = 4096) -> np.ndarray:
    """(d,) covariance eigenvalues of A: (N, d), descending (Fig 4.4.1a)."""
    return pca(A, block)[0]


def principal_directions(A: np.ndarray, k: int, block: int = 4096) -> np.ndarray:
    """(d, k) unit columns: the k leading principal directions of A: (N, d)."""
    return pca(A, block)[1][:, :k]


def tail_share(eigs: np.ndarray) -> np.ndarray:
    """(d,) 1 - cumulative share of variance after each component (Fig 4.4.1b); ends at 0."""
    return np.clip(1.0 - np.cumsum(eigs) / np.sum(eigs), 0.0, 1.0)


def components_to(eigs: np.ndarray, level: float = 0.01) -> int:
    """Number of leading components after which the remaining variance share is < level.

    That is the 0-based index of the first component where ``tail_share`` drops below
    ``level``, plus one.
    """
    return int(np.argmax(tail_share(eigs) < level)) + 1


def l1_norms(U: np.ndarray) -> np.ndarray:
    """(k,) l1 norms of the unit columns of U: (d, k); 1 on an axis, sqrt(d) when flat."""
    return np.abs(U).sum(0)


def corresponding_dimensionality(U: np.ndarray) -> np.ndarray:
    """(k,) pi ||u||_1^2 / 2 per unit column u of U: (d, k) (thesis 3.5.2, inverting eq 3.3).

    An axis vector gives pi/2, a flat one pi d/2. For u uniform on the unit sphere of a
    k-dimensional coordinate subspace, E ||u||_1^2 = 1 + 2(k - 1)/pi, so the mean is
    k - 1 + pi/2: the estimate reads about k for a k-dimensional axis-aligned subspace.
    """
    return np.pi / 2 * l1_norms(U) ** 2


def random_orthonormal(d: int, k: int, seed: int = 0) -> np.ndarray:
    """(d, k) float64 Haar-random orthonormal columns, the l1 baseline of Fig 4.4.2."""
    Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, k)))
    return Q * np.sign(np.diag(R))


def neuron_sparsity(A: np.ndarray) -> np.ndarray:
    """(d,) share of samples where each neuron is exactly 0 (thesis eq 4.2). A: (N, d)."""
    return 1.0 - np.count_nonzero(A, axis=0) / len(A)


def nonzero_stats(A: np.ndarray, block: int = 4096):
    """Mean and std (ddof=0) of each neuron's non-zero activations. A: (N, d).

    Returns two (d,) float64 arrays; NaN for neurons that are never non-zero.
    """
    n = np.count_nonzero(A, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.sum(A, axis=0, dtype=np.float64) / n
        sq = sum(np.square(np.where(X != 0, X - mean, 0.0)).sum(0) for X in _row_blocks(A, block))
        return mean, np.sqrt(sq / n)


def sorted_neuron_stats(A: np.ndarray) -> pd.DataFrame:
    """Neurons of A: (N, d) sorted by sparsity, ascending and stable (Fig 4.4.3, 4.4.4).

    Columns: rank, neuron (original index), sparsity, mean and std of the non-zero
    activations (NaN for a neuron that is always 0).
    """
    sparsity = neuron_sparsity(A)
    mean, std = nonzero_stats(A)
    order = np.argsort(sparsity, kind="stable")
    return pd.DataFrame(dict(rank=np.arange(len(order)), neuron=order, sparsity=sparsity[order],
                             mean=mean[order], std=std[order]))


def spectrum_table(activations: dict, seed: int = 0) -> pd.DataFrame:
    """Long table of PCA and l1 sparsity per layer and component (Fig 4.4.1, 4.4.2).

    activations: {layer: (N, d) activations}.
    Columns: layer, component (0-based, by decreasing variance), eigenvalue, tail_share,
    l1_norm and corresponding_dim of the principal direction, and random_l1, the l1 norm
    of the same column of a ``random_orthonormal(d, d, seed)`` baseline.
    """
    frames = []
    for layer, A in activations.items():
        eigs, V = pca(A)
        frames.append(pd.DataFrame(dict(
            layer=layer, component=np.arange(len(eigs)), eigenvalue=eigs,
            tail_share=tail_share(eigs), l1_norm=l1_norms(V),
            corresponding_dim=corresponding_dimensionality(V),
            random_l1=l1_norms(random_orthonormal(len(eigs), len(eigs), seed)))))
    return pd.concat(frames, ignore_index=True)


def neuron_table(activations: dict) -> pd.DataFrame:
    """``sorted_neuron_stats`` of every layer stacked, with a leading layer column.

    activations: {layer: (N, d) activations}.
    """
    return pd.concat([sorted_neuron_stats(A).assign(layer=layer)[
        ["layer", "rank", "neuron", "sparsity", "mean", "std"]]
        for layer, A in activations.items()], ignore_index=True)


# ---------------------------------------------------------------- baselines and summaries for the claims
def _abs_gaussian_moment(p: int) -> float:
    """E|g|^p for a standard normal g (p = 1..4)."""
    return {1: np.sqrt(2 / np.pi), 2: 1.0, 3: 2 * np.sqrt(2 / np.pi), 4: 3.0}[p]


def random_direction_dimensionality(d: int) -> tuple[float, float]:
    """Exact mean and std of the corresponding dimensionality pi ||u||_1^2 / 2 of one unit vector u
    drawn uniformly from the sphere in d dimensions (the random baseline of thesis 3.5.2, eq 3.3).

    With u = g / ||g|| (g standard normal, ||g|| independent of u), E ||u||_1^p = E (sum |g_i|)^p /
    E ||g||^p for p = 2, 4, and the sums' moments follow from those of |g|. The mean is d - 1 + pi/2;
    the std tends to sqrt(2 (pi - 3) d) (d = 256: 256.6 and 8.5)."""
    m = _abs_gaussian_moment
    n2 = d * m(2) + d * (d - 1) * m(1) ** 2
    n4 = (d * m(4) + 4 * d * (d - 1) * m(3) * m(1) + 3 * d * (d - 1) * m(2) ** 2
          + 6 * d * (d - 1) * (d - 2) * m(2) * m(1) ** 2 + d * (d - 1) * (d - 2) * (d - 3) * m(1) ** 4)
    l2, l4 = n2 / d, n4 / (d * (d + 2))
    return float(np.pi / 2 * l2), float(np.pi / 2 * np.sqrt(max(l4 - l2 ** 2, 0.0)))


def random_basis_dimensionality(d: int, k: int, draws: int = 100, seed: int = 0) -> tuple[float, float]:
    """Mean and std, over ``draws`` Haar-random orthonormal bases, of the corresponding dimensionality
    averaged over their first k columns: what chance gives for the mean over k principal directions
    of a d-dimensional layer (columns of one basis are not independent, so this is simulated)."""
    means = [corresponding_dimensionality(random_orthonormal(d, k, seed + i)).mean() for i in range(draws)]
    return float(np.mean(means)), float(np.std(means, ddof=1))


def leading_direction(A: np.ndarray, block: int = 4096) -> np.ndarray:
    """(d,) unit leading right singular vector of the *uncentred* A: (N, d) (the SVD of the data,
    thesis 3.5.1 footnote), signed so its entries sum to >= 0. For non-negative (post-ReLU)
    features it points close to the global mean: the direction that acts as a bias (4.4.2)."""
    G = np.zeros((A.shape[1], A.shape[1]))
    for X in _row_blocks(A, block):
        G += X.T @ X
    u = np.linalg.eigh(G)[1][:, -1]
    return u if u.sum() >= 0 else -u


def components_bootstrap(A: np.ndarray, level: float = 0.01, draws: int = 20, seed: int = 0) -> np.ndarray:
    """(draws,) ``components_to`` of the covariance of A: (N, d) resampled over its rows with
    replacement: the sampling noise of the count of components."""
    rng = np.random.default_rng(seed)
    return np.array([components_to(pca_spectrum(A[rng.integers(0, len(A), len(A))]), level) for _ in range(draws)])


def step_distance(sparsity: np.ndarray, num_classes: int) -> np.ndarray:
    """Distance of each neuron's sparsity to the nearest multiple of 1/num_classes (appendix C.2.4:
    after collapse a neuron is off for whole classes, so its sparsity sits on a step k/C).
    Uniform sparsities give a mean of 1/(4C)."""
    scaled = np.asarray(sparsity, float) * num_classes
    return np.abs(scaled - np.round(scaled)) / num_classes


def leading_direction_table(activations: dict) -> pd.DataFrame:
    """Per layer: the leading direction of the uncentred data (``leading_direction``), its corresponding
    dimensionality and its cosine with the global mean; the width d and ``live``, the neurons not zero
    on every sample (a dead neuron's entry of the direction is exactly 0, so a random direction over
    the live neurons is its baseline). activations: {layer: (N, d)}."""
    rows = []
    for layer, A in activations.items():
        u = leading_direction(A)
        mean = np.sum(A, axis=0, dtype=np.float64)
        norm = np.linalg.norm(mean)
        rows.append(dict(layer=layer, width=A.shape[1], live=int((A != 0).any(axis=0).sum()), leading_dim=float(corresponding_dimensionality(u[:, None])[0]),
                         cosine_with_mean=float(u @ mean / norm) if norm > 0 else float("nan")))
    return pd.DataFrame(rows)

"""Clustering of layer activations (thesis 3.4, 4.3, appendix C.2; SPEC "Feature analysis").

Agglomerative clustering with the cut semantics of scikit-learn's
``AgglomerativeClustering(distance_threshold=t, n_clusters=None)`` (merges at distance
strictly below ``t`` are kept), but with memory that scales to 50k x 1024 activations:
cosine distances are written block by block into one condensed float64 array that
fastcluster then consumes in place, and Ward runs on the data itself (O(N d) memory).

Cluster labelling follows thesis 4.3.2: every cluster of at least ``min_size`` points is
labelled by its majority class; points in smaller clusters are "excluded".

UMAP (thesis 4.3.1) uses an exact cosine k-nearest-neighbour graph computed by blocked
matrix products in torch and handed to umap-learn as ``precomputed_knn``.

Zero rows: the cosine distance of a zero vector to any *other* row (zero or not) is
defined as 1 (it is treated as orthogonal to everything), its distance to itself is 0.
This is scikit-learn's ``cosine_distances`` convention; scipy's ``pdist`` returns NaN
there and ``AgglomerativeClustering(metric="cosine")`` refuses such input.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import fastcluster
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.cluster.hierarchy import fcluster

COSINE_LINKAGES = ("complete", "average", "single")


def _unit_rows(A: np.ndarray) -> np.ndarray:
    """(N, d) float64 copy of A with rows scaled to unit norm; zero rows stay zero."""
    X = np.array(A, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    X /= np.where(norms > 0, norms, 1.0)[:, None]
    return X


def cosine_condensed_distances(A: np.ndarray, block: int = 512) -> np.ndarray:
    """Condensed cosine distances 1 - cos in scipy ``pdist`` order.

    A: (N, d) activations (any float dtype; computed in float64).
    block: rows per BLAS product; the temporary is (block, N) float64.
    Returns (N (N - 1) / 2,) float64, clipped to [0, 2]. Memory: the result plus one
    (N, d) float64 copy of A. Zero rows are at distance 1 from every other row.
    """
    X = _unit_rows(A)
    n = len(X)
    D = np.empty(n * (n - 1) // 2)
    for s in range(0, n - 1, block):
        e = min(s + block, n - 1)
        G = X[s:e] @ X[s:].T  # (e - s, n - s) cosine similarities
        for i in range(s, e):
            start = n * i - i * (i + 1) // 2
            np.subtract(1.0, G[i - s, i - s + 1:], out=D[start:start + n - 1 - i])
    return np.clip(D, 0.0, 2.0, out=D)


def agglomerative_labels(A: np.ndarray, metric: str = "cosine", linkage: str = "complete",
                         threshold: float = 0.7, block: int = 512) -> np.ndarray:
    """Flat agglomerative clustering cut at ``threshold``, same partition as scikit-learn.

    A: (N, d) activations. metric/linkage: "cosine" with "complete" (thesis 4.3.2),
    "average" or "single"; or "euclidean" with "ward" (appendix C.2.2, threshold 0.5).
    Like ``AgglomerativeClustering(distance_threshold=threshold)`` a merge is kept iff
    its linkage distance is strictly below ``threshold``.
    Returns (N,) int64 cluster ids 0..K-1 (arbitrary order).
    """
    if metric == "cosine" and linkage in COSINE_LINKAGES:
        # fastcluster.linkage copies its input under numpy 2 even with preserve_input=False;
        # its C routine works in place on the condensed array, halving peak memory.
        D = cosine_condensed_distances(A, block)
        Z = np.empty((len(A) - 1, 4))
        fastcluster.linkage_wrap(len(A), D, Z, fastcluster.mthidx[linkage])
        del D
    elif metric == "euclidean" and linkage == "ward":
        Z = fastcluster.linkage_vector(np.asarray(A), method="ward")
    else:
        raise ValueError(f"unsupported metric/linkage pair: {metric}/{linkage}")
    # fcluster keeps merges at heights <= t; the largest float below t gives "< threshold".
    return fcluster(Z, np.nextafter(threshold, -np.inf), criterion="distance") - 1


@dataclass(frozen=True)
class ClusterLabels:
    """Majority-class labelling of a clustering (thesis 4.3.2).

    clusters: (K,) cluster ids, sorted. classes: (C,) class values, sorted.
    counts: (K, C) points of each class per cluster. labels: (K,) majority class of each
    cluster, -1 where the cluster has fewer than ``min_size`` points.
    point_labels: (N,) label of each point's cluster (-1: excluded).
    excluded: points in clusters below ``min_size``. accuracy: share of non-excluded
    points whose cluster label is their class. avg_points: points per kept cluster.
    """

    clusters: np.ndarray
    classes: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    point_labels: np.ndarray
    excluded: int
    accuracy: float
    avg_points: float

    @property
    def sizes(self) -> np.ndarray:
        """(K,) points per cluster."""
        return self.counts.sum(1)

    @property
    def kept(self) -> np.ndarray:
        """(K,) bool, clusters with at least ``min_size`` points."""
        return self.labels >= 0


def label_clusters(clusters: np.ndarray, y: np.ndarray, min_size: int = 3) -> ClusterLabels:
    """Label each cluster of >= ``min_size`` points by its majority class.

    clusters: (N,) int cluster ids. y: (N,) int labels >= 0.
    Ties go to the smallest tied class. ``avg_points`` = kept points / kept clusters:
    the thesis's Table C.2.1 (10 kept clusters, 6 excluded points, "5000" of 50,000)
    rules out dividing by all clusters. accuracy and avg_points are NaN when every
    point is excluded (Table C.2.1, layer 0).
    """
    ids, c = np.unique(clusters, return_inverse=True)
    classes, k = np.unique(y, return_inverse=True)
    counts = np.bincount(c * len(classes) + k, minlength=len(ids) * len(classes))
    counts = counts.reshape(len(ids), len(classes))
    sizes = counts.sum(1)
    kept = sizes >= min_size
    labels = np.where(kept, classes[counts.argmax(1)], -1)
    point_labels = labels[c]
    n_kept = int(sizes[kept].sum())
    correct = int(counts.max(1)[kept].sum())
    return ClusterLabels(
        clusters=ids, classes=classes, counts=counts, labels=labels,
        point_labels=point_labels, excluded=len(y) - n_kept,
        accuracy=correct / n_kept if n_kept else np.nan,
        avg_points=n_kept / kept.sum() if n_kept else np.nan,
    )


def cluster_class_matrix(clusters: np.ndarray, y: np.ndarray, min_size: int = 3) -> pd.DataFrame:
    """Class composition of each kept cluster, rows summing to 1 (thesis Fig 4.3.2).

    clusters: (N,) int cluster ids. y: (N,) int labels.
    Returns a (K_kept, C) DataFrame indexed by (label, cluster, size), ordered by label,
    then size descending, then cluster id; columns are the classes of y.
    """
    lab = label_clusters(clusters, y, min_size)
    sizes, keep = lab.sizes, np.flatnonzero(lab.kept)
    order = keep[np.lexsort((lab.clusters[keep], -sizes[keep], lab.labels[keep]))]
    index = pd.MultiIndex.from_arrays(
        [lab.labels[order], lab.clusters[order], sizes[order]], names=["label", "cluster", "size"])
    return pd.DataFrame(lab.counts[order] / sizes[order, None], index=index,
                        columns=pd.Index(lab.classes, name="class"))


def hierarchical_accuracy(clusters_l: np.ndarray, clusters_next: np.ndarray) -> float:
    """Thesis eq 4.1: 1/N sum over clusters a of layer l of max_a' |a ∩ a'| over layer l+1.

    clusters_l, clusters_next: (N,) int cluster ids of the same points in two layers.
    Equals 1.0 iff every cluster of layer l lies inside one cluster of layer l+1.
    """
    _, a = np.unique(clusters_l, return_inverse=True)
    _, b = np.unique(clusters_next, return_inverse=True)
    table = sparse.csr_matrix((np.ones(len(a), dtype=np.int64), (a, b)))
    return float(table.max(axis=1).sum()) / len(a)


def cluster_layers(activations: dict, metric: str = "cosine", linkage: str = "complete",
                   threshold: float = 0.7) -> dict:
    """{layer: (N, d) activations} -> {layer: (N,) cluster ids} by ``agglomerative_labels``."""
    return {layer: agglomerative_labels(A, metric, linkage, threshold)
            for layer, A in activations.items()}


def clustering_table(clusters: dict, y: np.ndarray, min_size: int = 3) -> pd.DataFrame:
    """Thesis Table 4.3.1: one row per layer.

    clusters: {layer: (N,) cluster ids}. y: (N,) int labels.
    Columns: layer, clusters (kept), avg_points, accuracy, excluded.
    """
    rows = []
    for layer, c in clusters.items():
        lab = label_clusters(c, y, min_size)
        rows.append(dict(layer=layer, clusters=int(lab.kept.sum()), avg_points=lab.avg_points,
                         accuracy=lab.accuracy, excluded=lab.excluded))
    return pd.DataFrame(rows)


def hierarchy_table(clusters: dict) -> pd.DataFrame:
    """Thesis Table 4.3.2: hierarchical accuracy between consecutive layers.

    clusters: {layer: (N,) cluster ids}; layers are taken in sorted order.
    Columns: layer_from, layer_to, hierarchical_accuracy.
    """
    layers = sorted(clusters)
    return pd.DataFrame(
        [dict(layer_from=a, layer_to=b,
              hierarchical_accuracy=hierarchical_accuracy(clusters[a], clusters[b]))
         for a, b in zip(layers[:-1], layers[1:])],
        columns=["layer_from", "layer_to", "hierarchical_accuracy"])


def cosine_knn(A: np.ndarray, k: int = 20, device=None, block: int = 1024):
    """Exact cosine k-nearest neighbours, each point its own first neighbour (umap-learn's layout).

    A: (N, d) activations; computed in A's dtype (float32 activations: float32 products).
    device: torch device; None picks CUDA when available, else CPU.
    block: query rows per (block, N) similarity product.
    Returns indices (N, k) int64 and distances (N, k) float32 1 - cos, ascending,
    with column 0 = the point itself at distance 0.
    """
    import torch  # ~0.6 GB resident: kept out of the clustering path

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    X = torch.as_tensor(np.asarray(A), device=device)
    norms = X.norm(dim=1, keepdim=True)
    X = X / torch.where(norms > 0, norms, torch.ones_like(norms))
    n = len(X)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, block):
        e = min(s + block, n)
        S = X[s:e] @ X.T
        rows = torch.arange(e - s, device=device)
        S[rows, rows + s] = torch.inf  # self first, whatever the rounding
        sim, idx = S.topk(k, dim=1)
        dist = (1 - sim).clamp_(0, 2)
        dist[:, 0] = 0
        indices[s:e] = idx.cpu().numpy()
        distances[s:e] = dist.cpu().numpy()
    return indices, distances


def umap_embedding(A: np.ndarray, n_neighbors: int = 20, seed: int = 0, knn=None) -> np.ndarray:
    """2-D UMAP of activations with the cosine metric (thesis 4.3.1).

    A: (N, d) activations. knn: (indices, distances) from ``cosine_knn`` with
    k >= n_neighbors; computed here when None.
    Returns (N, 2) float32 embedding.
    """
    import umap  # slow import (numba)

    if knn is None:
        knn = cosine_knn(A, n_neighbors)
    indices, distances = knn
    reducer = umap.UMAP(metric="cosine", n_neighbors=n_neighbors, random_state=seed,
                        precomputed_knn=(indices[:, :n_neighbors], distances[:, :n_neighbors]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value 1 overridden.*")
        return reducer.fit_transform(A)

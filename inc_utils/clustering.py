"""Clustering of layer activations (thesis 3.4, 4.3, appendix C.2).

Agglomerative clustering with the cut semantics of scikit-learn's
``AgglomerativeClustering(distance_threshold=t, n_clusters=None)`` (merges at distance
strictly below ``t`` are kept), but with memory and time that scale to 50k x 1024
activations: cosine or Euclidean distances are written block by block (one BLAS product
each) into one condensed float64 array that fastcluster then consumes in place.

The Ward threshold (appendix C.2.2: 0.5) is a length in the units of the activations and
Ward heights grow with the square root of cluster size, so unlike the cosine threshold its
meaning changes with the scale of each layer; ``ward_scale_table`` shows by how much.

Cluster labelling follows thesis 4.3.2: every cluster of at least ``min_size`` points is
labelled by its majority class; points in smaller clusters are "excluded".

UMAP (thesis 4.3.1) takes its cosine k-nearest-neighbour graph from the faster search per
device (``benchmarks/clustering_scale.py``): on CUDA an exact one by blocked matrix products
in torch, handed to umap-learn as ``precomputed_knn``; on a CPU umap-learn's own (exact
below 4,096 points, NN-descent above).

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

LINKAGES = {"cosine": ("complete", "average", "single"), "euclidean": ("ward",)}


def _unit_rows(A: np.ndarray) -> np.ndarray:
    """(N, d) float64 copy of A with rows scaled to unit norm; zero rows stay zero."""
    X = np.array(A, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    X /= np.where(norms > 0, norms, 1.0)[:, None]
    return X


def condensed_distances(A: np.ndarray, metric: str = "cosine", block: int = 512) -> np.ndarray:
    """Condensed pairwise distances in scipy ``pdist`` order, one BLAS product per block of rows.

    A: (N, d) activations (any float dtype; computed in float64).
    metric: "cosine" (1 - cos, clipped to [0, 2]; zero rows at distance 1 from every other
    row) or "euclidean" (||a - b|| from the Gram matrix of the centred rows: centring changes
    no distance and keeps the cancellation error near 1e-16 x the squared spread).
    block: rows per product; the temporary is (block, N) float64.
    Returns (N (N - 1) / 2,) float64. Memory: the result plus one (N, d) float64 copy of A.
    """
    if metric == "cosine":
        X = _unit_rows(A)
    elif metric == "euclidean":
        X = np.array(A, dtype=np.float64)
        X -= X.mean(0)
        sq = np.einsum("ij,ij->i", X, X)
    else:
        raise ValueError(f"unsupported metric: {metric}")
    n = len(X)
    D = np.empty(n * (n - 1) // 2)
    for s in range(0, n - 1, block):
        e = min(s + block, n - 1)
        G = X[s:e] @ X[s:].T  # (e - s, n - s) inner products
        for i in range(s, e):
            row, out = G[i - s, i - s + 1:], D[n * i - i * (i + 1) // 2:][:n - 1 - i]
            if metric == "cosine":
                np.subtract(1.0, row, out=out)
            else:
                np.add(sq[i], sq[i + 1:], out=out)
                out -= 2 * row
    if metric == "cosine":
        return np.clip(D, 0.0, 2.0, out=D)
    return np.sqrt(np.maximum(D, 0.0, out=D), out=D)


def linkage_tree(A: np.ndarray, metric: str = "cosine", linkage: str = "complete",
                 block: int = 512) -> np.ndarray:
    """Agglomerative merge tree of A's rows as a scipy linkage matrix.

    A: (N, d) activations. metric/linkage: "cosine" with "complete" (thesis 4.3.2),
    "average" or "single"; or "euclidean" with "ward" (appendix C.2.2).
    Returns Z: (N - 1, 4) float64, rows (cluster a, cluster b, height, size), heights
    ascending. Heights are scikit-learn's ``distances_``: for Ward, scipy's
    sqrt(2 n_a n_b / (n_a + n_b)) ||centroid_a - centroid_b|| (not squared), so two
    singletons merge at their Euclidean distance.
    Memory: N (N - 1) / 2 float64 (10 GB at N = 50,000), as for scikit-learn's own Ward.
    """
    if linkage not in LINKAGES.get(metric, ()):
        raise ValueError(f"unsupported metric/linkage pair: {metric}/{linkage}")
    # fastcluster.linkage copies its input under numpy 2 even with preserve_input=False;
    # its C routine works in place on the condensed array, halving peak memory.
    D = condensed_distances(A, metric, block)
    Z = np.empty((len(A) - 1, 4))
    fastcluster.linkage_wrap(len(A), D, Z, fastcluster.mthidx[linkage])
    return Z


def flat_clusters(Z: np.ndarray, threshold: float) -> np.ndarray:
    """Cut a linkage tree like ``AgglomerativeClustering(distance_threshold=threshold)``:
    a merge is kept iff its height is strictly below ``threshold``.
    Returns (N,) int64 cluster ids 0..K-1 (arbitrary order)."""
    # fcluster keeps merges at heights <= t; the largest float below t gives "< threshold".
    return fcluster(Z, np.nextafter(threshold, -np.inf), criterion="distance") - 1


def cut_range(Z: np.ndarray, k: int) -> tuple[float, float]:
    """Thresholds t with low < t <= high cut the tree Z into exactly k clusters (1 <= k <= N)."""
    heights = np.concatenate([[-np.inf], Z[:, 2], [np.inf]])
    n = len(Z) + 1
    return float(heights[n - k]), float(heights[n - k + 1])


def agglomerative_labels(A: np.ndarray, metric: str = "cosine", linkage: str = "complete",
                         threshold: float = 0.7, block: int = 512) -> np.ndarray:
    """Flat agglomerative clustering cut at ``threshold``, the same partition as scikit-learn's
    ``AgglomerativeClustering(metric, linkage, distance_threshold=threshold)``.

    A: (N, d) activations; metric/linkage as in ``linkage_tree`` (thesis 4.3.2: cosine,
    complete, 0.7; appendix C.2.2: euclidean, ward, 0.5).
    Returns (N,) int64 cluster ids 0..K-1 (arbitrary order).
    """
    return flat_clusters(linkage_tree(A, metric, linkage, block), threshold)


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


def ward_scale_table(activations: dict, trees: dict, threshold: float, n_clusters: int) -> pd.DataFrame:
    """How a fixed Euclidean threshold sits against each layer's scale (appendix C.2.2, 4.4.4).

    activations: {layer: (N, d)}. trees: {layer: linkage matrix} of the same layers.
    Columns: layer; rms_norm, sqrt(mean ||x||^2), the activations' scale; clusters, all
    clusters (any size) the cut at ``threshold`` leaves; cut_low and cut_high, the
    thresholds t in (cut_low, cut_high] that leave exactly ``n_clusters`` clusters.
    """
    rows = []
    for layer, Z in trees.items():
        A = activations[layer]
        low, high = cut_range(Z, n_clusters)
        rows.append(dict(layer=layer, rms_norm=float(np.sqrt(np.einsum("ij,ij->", A, A, dtype=np.float64) / len(A))),
                         clusters=int(np.sum(Z[:, 2] >= threshold)) + 1, cut_low=low, cut_high=high))
    return pd.DataFrame(rows)


def _torch_device(device):
    """torch.device for ``device``; None picks CUDA when available, else CPU."""
    import torch  # ~0.6 GB resident: kept out of the clustering path

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def cosine_knn(A: np.ndarray, k: int = 20, device=None, block: int = 1024):
    """Exact cosine k-nearest neighbours, each point its own first neighbour (umap-learn's layout).

    A: (N, d) activations; computed in A's dtype (float32 activations: float32 products).
    device: torch device; None picks CUDA when available, else CPU.
    block: query rows per (block, N) similarity product.
    Returns indices (N, k) int64 and distances (N, k) float32 1 - cos, ascending,
    with column 0 = the point itself at distance 0.
    """
    import torch

    device = _torch_device(device)
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


def umap_embedding(A: np.ndarray, n_neighbors: int = 20, seed: int = 0, knn=None, device=None) -> np.ndarray:
    """2-D UMAP of activations with the cosine metric (thesis 4.3.1).

    A: (N, d) activations. knn: (indices, distances) from ``cosine_knn`` with
    k >= n_neighbors. When None, the neighbour search is the faster one on ``device``
    (None: CUDA when available; ``benchmarks/clustering_scale.py``): ``cosine_knn`` on
    CUDA, umap-learn's own on a CPU.
    Returns (N, 2) float32 embedding.
    """
    import umap  # slow import (numba)

    if knn is None and _torch_device(device).type == "cuda":
        knn = cosine_knn(A, n_neighbors, device)
    given = {} if knn is None else dict(precomputed_knn=(knn[0][:, :n_neighbors], knn[1][:, :n_neighbors]))
    reducer = umap.UMAP(metric="cosine", n_neighbors=n_neighbors, random_state=seed, **given)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value 1 overridden.*")
        return reducer.fit_transform(A)

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist, squareform
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score

from inc_utils.clustering import (
    agglomerative_labels, cluster_class_matrix, cluster_layers, clustering_table,
    condensed_distances, cosine_knn, cut_range, flat_clusters, hierarchical_accuracy,
    hierarchy_table, label_clusters, linkage_tree, umap_embedding, ward_scale_table,
)

# Clusters 10 (4 points), 5 (3), 7 (2), 3 (1), 12 (4).
CLUSTERS = np.array([10, 10, 10, 10, 5, 5, 5, 7, 7, 3, 12, 12, 12, 12])
Y = np.array([1, 1, 2, 0, 2, 0, 1, 0, 0, 2, 2, 2, 1, 1])


def relu_blobs(n, seed, d=64, centres=8, spread=0.6):
    """ReLU of a random projection of Gaussian blobs: (n, d) float32, nonnegative."""
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((centres, 16))
    Z = C[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, 16))
    return np.maximum(Z @ rng.standard_normal((16, d)), 0).astype(np.float32)


def sklearn_labels(A, metric, linkage, threshold):
    return AgglomerativeClustering(n_clusters=None, metric=metric, linkage=linkage,
                                   distance_threshold=threshold).fit_predict(A)


def test_label_clusters_majority_ties_and_exclusion():
    lab = label_clusters(CLUSTERS, Y)
    np.testing.assert_array_equal(lab.clusters, [3, 5, 7, 10, 12])
    # cluster 5 ties 0/1/2 -> 0, cluster 12 ties 1/2 -> 1; clusters 3 and 7 are too small.
    np.testing.assert_array_equal(lab.labels, [-1, 0, -1, 1, 1])
    np.testing.assert_array_equal(lab.sizes, [1, 3, 2, 4, 4])
    np.testing.assert_array_equal(lab.point_labels,
                                  [1, 1, 1, 1, 0, 0, 0, -1, -1, -1, 1, 1, 1, 1])
    assert lab.excluded == 3
    assert lab.accuracy == pytest.approx(5 / 11)
    assert lab.avg_points == pytest.approx(11 / 3)


def test_label_clusters_min_size_and_all_excluded():
    lab = label_clusters(CLUSTERS, Y, min_size=1)
    assert lab.excluded == 0
    assert lab.accuracy == pytest.approx((2 + 1 + 2 + 1 + 2) / 14)
    assert lab.avg_points == pytest.approx(14 / 5)
    lab = label_clusters(np.arange(6), np.zeros(6, dtype=int))
    assert lab.excluded == 6 and np.isnan(lab.accuracy) and np.isnan(lab.avg_points)


def test_cluster_class_matrix_order_and_rows():
    clusters = np.concatenate([CLUSTERS, [20] * 5])
    y = np.concatenate([Y, [1, 1, 1, 2, 0]])
    M = cluster_class_matrix(clusters, y)
    assert list(M.index) == [(0, 5, 3), (1, 20, 5), (1, 10, 4), (1, 12, 4)]
    assert list(M.columns) == [0, 1, 2]
    np.testing.assert_allclose(M.sum(axis=1), 1.0)
    np.testing.assert_allclose(M.loc[(1, 20, 5)], [0.2, 0.6, 0.2])
    np.testing.assert_allclose(M.loc[(1, 12, 4)], [0.0, 0.5, 0.5])


def test_hierarchical_accuracy_hand_cases():
    a = np.array([0, 0, 0, 1, 1, 2])
    b = np.array([0, 0, 1, 1, 1, 1])
    assert hierarchical_accuracy(a, b) == pytest.approx(5 / 6)
    assert hierarchical_accuracy(b, a) == pytest.approx(4 / 6)
    assert hierarchical_accuracy(a, a) == 1.0


def test_hierarchical_accuracy_nested_and_brute_force():
    rng = np.random.default_rng(0)
    fine = rng.integers(0, 300, 2000)
    assert hierarchical_accuracy(fine, rng.integers(0, 7, 300)[fine]) == 1.0
    coarse = rng.integers(0, 40, 2000)
    brute = sum(np.bincount(coarse[fine == a]).max() for a in np.unique(fine)) / 2000
    assert hierarchical_accuracy(fine, coarse) == pytest.approx(brute)


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_cosine_condensed_matches_pdist(block):
    A = np.random.default_rng(block).standard_normal((203, 33)).astype(np.float32)
    D = condensed_distances(A, "cosine", block=block)
    assert D.dtype == np.float64 and D.shape == (203 * 202 // 2,)
    np.testing.assert_allclose(D, pdist(A, "cosine"), rtol=0, atol=1e-12)


@pytest.mark.parametrize("block", [1, 64, 1000])
def test_euclidean_condensed_matches_pdist_far_from_origin(block):
    # An offset of 1e4 against a spread of 1: without centring, the Gram trick loses ~1e-8
    # of 1e8 squared norms; with it the error stays far below the distances.
    A = 1e4 + np.random.default_rng(block).standard_normal((203, 33))
    A[5] = A[4]
    D = condensed_distances(A, "euclidean", block=block)
    ref = pdist(A)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-6)
    assert squareform(D)[4, 5] < 1e-6


def test_unsupported_metric():
    with pytest.raises(ValueError):
        condensed_distances(np.ones((4, 2)), "cityblock")


def test_cosine_condensed_special_rows():
    A = np.array([[1.0, 0], [2, 0], [-3, 0], [0, 0], [0, 0], [0, 5]])
    D = squareform(condensed_distances(A))
    np.testing.assert_allclose(D[0], [0, 0, 2, 1, 1, 1], atol=1e-15)
    np.testing.assert_allclose(D[3], [1, 1, 1, 0, 1, 1])  # zero rows: orthogonal to all


@pytest.mark.parametrize("seed,n", [(0, 300), (1, 500), (2, 800), (3, 650)])
def test_cosine_complete_matches_sklearn(seed, n):
    A = relu_blobs(n, seed)
    ours = agglomerative_labels(A)
    ref = sklearn_labels(A, "cosine", "complete", 0.7)
    assert 5 < ours.max() + 1 < n // 4  # the threshold matters
    assert adjusted_rand_score(ours, ref) == 1.0


@pytest.mark.parametrize("linkage,threshold", [("average", 0.3), ("single", 0.1)])
def test_cosine_other_linkages_match_sklearn(linkage, threshold):
    A = relu_blobs(400, 7)
    ours = agglomerative_labels(A, "cosine", linkage, threshold)
    assert ours.max() > 3
    assert adjusted_rand_score(ours, sklearn_labels(A, "cosine", linkage, threshold)) == 1.0


@pytest.mark.parametrize("seed,n,spread", [(0, 300, 0.05), (1, 600, 0.1), (2, 800, 0.08)])
def test_ward_matches_sklearn(seed, n, spread):
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((6, 10))[rng.integers(0, 6, n)]
         + spread * rng.standard_normal((n, 10))).astype(np.float32)
    ours = agglomerative_labels(A, "euclidean", "ward", 0.5)
    assert 6 < ours.max() + 1 < n // 3
    assert adjusted_rand_score(ours, sklearn_labels(A, "euclidean", "ward", 0.5)) == 1.0


def test_ward_heights_are_sklearns_distances():
    # scikit-learn's Ward distances (scipy's convention): sqrt(2 n_a n_b / (n_a + n_b)) times
    # the centroid distance, not squared. Here: pairs at 1, then the two pairs at 10 * sqrt(2).
    A = np.array([[0.0], [1.0], [10.0], [11.0]])
    np.testing.assert_allclose(linkage_tree(A, "euclidean", "ward")[:, 2], [1, 1, 10 * np.sqrt(2)])
    B = relu_blobs(300, 9)
    ref = AgglomerativeClustering(n_clusters=None, linkage="ward", distance_threshold=0).fit(B)
    np.testing.assert_allclose(linkage_tree(B, "euclidean", "ward")[:, 2], np.sort(ref.distances_),
                               rtol=1e-9)


def test_cut_range_gives_k_clusters():
    Z = linkage_tree(relu_blobs(200, 2), "euclidean", "ward")
    n_clusters = lambda t: flat_clusters(Z, t).max() + 1
    for k in (1, 2, 10, 200):
        low, high = cut_range(Z, k)
        assert low < high
        if np.isfinite(low):  # just above low: k clusters; at low: more
            assert n_clusters(np.nextafter(low, np.inf)) == k and n_clusters(low) > k
        if np.isfinite(high):  # at high: k clusters; just above: fewer
            assert n_clusters(high) == k and n_clusters(np.nextafter(high, np.inf)) < k
    assert cut_range(Z, 1)[1] == np.inf and cut_range(Z, 200)[0] == -np.inf


def test_ward_scale_table():
    A = np.array([[0.0], [1.0], [10.0], [11.0]])
    table = ward_scale_table({3: A}, {3: linkage_tree(A, "euclidean", "ward")}, 0.5, 2)
    assert list(table.columns) == ["layer", "rms_norm", "clusters", "cut_low", "cut_high"]
    row = table.iloc[0]
    assert row.layer == 3 and row.clusters == 4
    np.testing.assert_allclose([row.rms_norm, row.cut_low, row.cut_high],
                               [np.sqrt(222 / 4), 1, 10 * np.sqrt(2)])


def test_merge_exactly_at_threshold_is_not_taken():
    # Ward height of two singletons is their distance: exactly 0.5, so no merge (sklearn: < t).
    A = np.array([[0.0], [0.5], [3.0]])
    assert len(set(agglomerative_labels(A, "euclidean", "ward", 0.5))) == 3
    assert len(set(sklearn_labels(A, "euclidean", "ward", 0.5))) == 3
    assert len(set(agglomerative_labels(A, "euclidean", "ward", 0.5000001))) == 2
    # e1, e2, -e1: cosine heights 1 then 2; cut at 1.0 keeps three clusters.
    B = np.array([[1.0, 0], [0, 1], [-1, 0]])
    assert len(set(agglomerative_labels(B, threshold=1.0))) == 3
    assert len(set(sklearn_labels(B, "cosine", "complete", 1.0))) == 3


def test_unsupported_pair():
    with pytest.raises(ValueError):
        agglomerative_labels(np.ones((4, 2)), "euclidean", "complete")


def test_tables():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    acts = {0: relu_blobs(300, 0), 1: relu_blobs(300, 1), 2: relu_blobs(300, 2)}
    clusters = cluster_layers(acts)
    table = clustering_table(clusters, y)
    assert list(table.columns) == ["layer", "clusters", "avg_points", "accuracy", "excluded"]
    lab = label_clusters(clusters[1], y)
    row = table.set_index("layer").loc[1]
    assert (row.accuracy, row.excluded, row.avg_points) == (lab.accuracy, lab.excluded,
                                                             lab.avg_points)
    pairs = hierarchy_table({2: clusters[2], 0: clusters[0], 1: clusters[1]})
    expected = pd.DataFrame(dict(layer_from=[0, 1], layer_to=[1, 2], hierarchical_accuracy=[
        hierarchical_accuracy(clusters[0], clusters[1]),
        hierarchical_accuracy(clusters[1], clusters[2])]))
    pd.testing.assert_frame_equal(pairs[expected.columns], expected)
    assert (pairs.chance < pairs.hierarchical_accuracy + 1).all() and (pairs.chance_std >= 0).all()


def brute_knn(A, k):
    D = squareform(pdist(A, "cosine"))
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(D, idx, 1)


@pytest.mark.parametrize("block", [16, 1024])
def test_cosine_knn_matches_brute_force(block):
    A = np.random.default_rng(0).standard_normal((300, 20))
    idx, dist = cosine_knn(A, k=10, device="cpu", block=block)
    ref_idx, ref_dist = brute_knn(A, 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-6)
    assert dist.dtype == np.float32 and (idx[:, 0] == np.arange(300)).all()


def test_cosine_knn_float32_and_duplicates_self_first():
    A = relu_blobs(200, 4)
    A[1] = A[0]
    idx, dist = cosine_knn(A, k=5, device="cpu")
    assert (idx[:, 0] == np.arange(200)).all() and (dist[:, 0] == 0).all()
    assert idx[0, 1] == 1 and idx[1, 1] == 0
    _, ref_dist = brute_knn(A.astype(np.float64), 5)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-5)


@pytest.mark.slow
def test_umap_embedding_smoke():
    E = umap_embedding(relu_blobs(200, 5), n_neighbors=10, device="cpu")
    assert E.shape == (200, 2) and np.isfinite(E).all()


class RecordingUMAP:
    """Stands in for umap.UMAP: records its keyword arguments."""
    kwargs = None

    def __init__(self, **kwargs):
        RecordingUMAP.kwargs = kwargs

    def fit_transform(self, A):
        return np.zeros((len(A), 2), np.float32)


@pytest.mark.parametrize("device,exact", [("cpu", False), ("cuda", True)])
def test_umap_neighbour_search_per_device(monkeypatch, device, exact):
    import umap
    monkeypatch.setattr(umap, "UMAP", RecordingUMAP)
    # cosine_knn on "cuda" runs on the CPU here: the choice, not the GPU, is under test.
    monkeypatch.setattr("inc_utils.clustering.cosine_knn", lambda A, k, device: cosine_knn(A, k, "cpu"))
    A = relu_blobs(100, 6)
    umap_embedding(A, n_neighbors=7, seed=3, device=device)
    kwargs = RecordingUMAP.kwargs
    assert (kwargs["metric"], kwargs["n_neighbors"], kwargs["random_state"]) == ("cosine", 7, 3)
    assert ("precomputed_knn" in kwargs) == exact
    if exact:
        np.testing.assert_array_equal(kwargs["precomputed_knn"][0], cosine_knn(A, 7, "cpu")[0])


def test_umap_given_knn_is_cut_to_n_neighbors(monkeypatch):
    import umap
    monkeypatch.setattr(umap, "UMAP", RecordingUMAP)
    A = relu_blobs(100, 6)
    idx, dist = cosine_knn(A, k=15, device="cpu")
    umap_embedding(A, n_neighbors=10, knn=(idx, dist), device="cpu")
    given = RecordingUMAP.kwargs["precomputed_knn"]
    np.testing.assert_array_equal(given[0], idx[:, :10])
    np.testing.assert_array_equal(given[1], dist[:, :10])

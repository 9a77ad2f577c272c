"""Time and peak memory of the feature-analysis clustering and UMAP at scale.

Cases, each in a fresh subprocess whose peak resident memory (VmHWM, which sees BLAS and
fastcluster allocations that tracemalloc misses) is reported, with its time and memory as
ratios to its baseline (same N, same invocation):
  ours           agglomerative_labels, cosine / complete / 0.7 (blocked condensed + fastcluster)
  sklearn        AgglomerativeClustering(metric="cosine", linkage="complete", distance_threshold=0.7)
  ward           agglomerative_labels, euclidean / ward / 0.5 (blocked condensed + fastcluster)
  ward_sklearn   AgglomerativeClustering(linkage="ward", distance_threshold=0.5)
  umap_ours      umap_embedding(A): the neighbour search it picks for this machine's device
  umap_exact     umap_embedding with the exact torch cosine kNN (cosine_knn, CUDA when available)
  umap_default   umap.UMAP(metric="cosine", n_neighbors=20, random_state=0): umap-learn's own
                 kNN (exact below 4,096 points, NN-descent above); baseline of both UMAP cases
Data: ReLU of a random projection of 10 Gaussian blobs, (N, 1024) float32. UMAP cases run
a small untimed warm-up fit first so numba compilation is not counted.

The neighbour search alone, which is what the UMAP cases differ in, is then timed in this
process: the exact ``cosine_knn`` on each available device against umap-learn's own search
(``umap.umap_.nearest_neighbors`` with the arguments ``UMAP.fit`` passes it from 4,096 points
on; below, UMAP.fit computes all distances instead), interleaved,
median of ``--repeats``; on a shared machine this ratio is steadier than the whole fits'.

    python benchmarks/clustering_scale.py                   # clustering at 5k and 20k, baselines and UMAP at 5k
    python benchmarks/clustering_scale.py --sizes 5000 --umap-sizes 5000 10000
    python benchmarks/clustering_scale.py --full            # adds ours at 50k and the baselines at 20k
    python benchmarks/clustering_scale.py --no-clustering --no-umap --knn-sizes 5000 10000
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BASELINE = {"ours": "sklearn", "ward": "ward_sklearn", "umap_ours": "umap_default", "umap_exact": "umap_default"}
CLUSTERING = {"ours": ("cosine", "complete", 0.7), "ward": ("euclidean", "ward", 0.5)}


def relu_blobs(n: int, d: int = 1024, seed: int = 0) -> np.ndarray:
    """(n, d) float32: ReLU of a random projection of 10 Gaussian blobs in 64 dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, 64)).astype(np.float32)
    Z = centres[rng.integers(0, 10, n)] + 2.0 * rng.standard_normal((n, 64), dtype=np.float32)
    return np.maximum(Z @ rng.standard_normal((64, d), dtype=np.float32), 0)


def run_case(case: str, A: np.ndarray) -> np.ndarray:
    """Result of one case on A: (N, d): (N,) cluster ids or (N, 2) embedding."""
    from inc_utils import clustering as CL
    if case in CLUSTERING:
        return CL.agglomerative_labels(A, *CLUSTERING[case])
    if case.endswith("sklearn"):
        from sklearn.cluster import AgglomerativeClustering
        metric, linkage, threshold = CLUSTERING["ours" if case == "sklearn" else "ward"]
        return AgglomerativeClustering(n_clusters=None, metric=metric, linkage=linkage,
                                       distance_threshold=threshold).fit_predict(A)
    if case == "umap_ours":
        return CL.umap_embedding(A)
    if case == "umap_exact":
        return CL.umap_embedding(A, knn=CL.cosine_knn(A))
    import umap
    return umap.UMAP(metric="cosine", n_neighbors=20, random_state=0).fit_transform(A)


def peak_gb() -> float:
    """This process's peak resident memory in GB (VmHWM)."""
    status = Path("/proc/self/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    return kb / 2**20


def child(case: str, n: int, out: str) -> None:
    """Run one case and print {seconds, peak_gb} as JSON; the result goes to ``out``."""
    if case.startswith("umap"):
        run_case(case, relu_blobs(4200, d=16, seed=1))
    A = relu_blobs(n)
    start = time.perf_counter()
    result = run_case(case, A)
    seconds = time.perf_counter() - start
    np.save(out, result)
    print(json.dumps(dict(seconds=seconds, peak_gb=peak_gb())))


def measure(case: str, n: int, workdir: str) -> dict:
    out = f"{workdir}/{case}_{n}.npy"
    proc = subprocess.run([sys.executable, __file__, "--case", case, "--n", str(n), "--out", out],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{case} at {n} failed:\n{proc.stderr}")
    row = dict(case=case, n=n, **json.loads(proc.stdout.splitlines()[-1]))
    print(row, flush=True)
    return row | dict(result=out)


def knn_search(method: str, A: np.ndarray, k: int = 20) -> np.ndarray:
    """(N, k) neighbour indices by ``method``: "umap" (umap-learn's own search, as UMAP.fit calls
    it with metric="cosine" and a seed) or a torch device name (exact ``cosine_knn``)."""
    if method == "umap":
        from umap.umap_ import nearest_neighbors
        return nearest_neighbors(A, k, "cosine", {}, True, np.random.RandomState(0), True,
                                 use_pynndescent=True, n_jobs=1)[0]
    from inc_utils.clustering import cosine_knn
    return cosine_knn(A, k, device=method)[0]


def knn_ratios(sizes: list[int], repeats: int) -> pd.DataFrame:
    """Median seconds of each neighbour search per N, its ratio to umap-learn's and its recall
    of the exact neighbours."""
    import torch
    methods = ["umap", "cpu"] + ["cuda"] * torch.cuda.is_available()
    for method in methods:  # warm-up: numba compilation, CUDA context
        knn_search(method, relu_blobs(4200, d=16, seed=1))
    rows = []
    for n in sizes:
        A, seconds, found = relu_blobs(n), {m: [] for m in methods}, {}
        for _ in range(repeats):
            for method in methods:
                start = time.perf_counter()
                found[method] = knn_search(method, A)
                seconds[method].append(time.perf_counter() - start)
        exact = found["cpu"]
        for method in methods:
            recall = np.mean([len(np.intersect1d(a, b)) for a, b in zip(found[method], exact)]) / exact.shape[1]
            median = float(np.median(seconds[method]))
            rows.append(dict(search=method, n=n, seconds=median,
                             time_vs_umap=median / float(np.median(seconds["umap"])), recall_vs_exact=float(recall)))
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def case_table(plan: list[tuple[str, int]]) -> pd.DataFrame:
    """Seconds and peak memory of each (case, N), with ratios to its baseline; for clusterings
    the number of clusters and the adjusted Rand index against the baseline's partition."""
    from sklearn.metrics import adjusted_rand_score
    with tempfile.TemporaryDirectory() as workdir:
        rows = pd.DataFrame([measure(case, n, workdir) for case, n in plan])
        ref = rows.set_index(["case", "n"])
        for i, row in rows.iterrows():
            key = (BASELINE.get(row.case), row.n)
            if key in ref.index:
                rows.loc[i, "time_vs_baseline"] = row.seconds / ref.loc[key, "seconds"]
                rows.loc[i, "mem_vs_baseline"] = row.peak_gb / ref.loc[key, "peak_gb"]
            if not row.case.startswith("umap"):
                labels = np.load(row.result)
                rows.loc[i, "clusters"] = labels.max() + 1
                if key in ref.index:
                    rows.loc[i, "ari_vs_baseline"] = adjusted_rand_score(labels, np.load(ref.loc[key, "result"]))
    return rows.drop(columns="result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000],
                        help="N for the clustering cases; the scikit-learn baselines run at the first")
    parser.add_argument("--full", action="store_true", help="ours and ward at 50k, the baselines at 20k too")
    parser.add_argument("--no-umap", action="store_true", help="skip the UMAP cases")
    parser.add_argument("--no-clustering", action="store_true", help="skip the clustering cases")
    parser.add_argument("--umap-sizes", type=int, nargs="+", default=[5000], help="N for the UMAP cases")
    parser.add_argument("--knn-sizes", type=int, nargs="+", default=[5000], help="N for the neighbour searches")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each neighbour search (median)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args.case, args.n, args.out)

    sizes = args.sizes + [50000] * args.full
    baseline_sizes = sorted(set(args.sizes[:1] + [20000] * args.full))
    plan = [] if args.no_clustering else (
        [(case, n) for n in sizes for case in ("ours", "ward")]
        + [(case, n) for n in baseline_sizes for case in ("sklearn", "ward_sklearn")])
    plan += [] if args.no_umap else [(case, n) for n in args.umap_sizes
                                     for case in ("umap_default", "umap_ours", "umap_exact")]
    if plan:
        print(case_table(plan).to_string(index=False, float_format="%.3g"))
    print(knn_ratios(args.knn_sizes, args.repeats).to_string(index=False, float_format="%.3g"))


if __name__ == "__main__":
    main()

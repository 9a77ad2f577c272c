"""Time and peak memory of the feature-analysis clustering and UMAP at scale.

Cases, each in a fresh subprocess whose peak resident memory (VmHWM, which sees BLAS and
fastcluster allocations that tracemalloc misses) is reported:
  ours           agglomerative_labels, cosine / complete / 0.7 (blocked condensed + fastcluster)
  sklearn        AgglomerativeClustering(metric="cosine", linkage="complete", distance_threshold=0.7)
  umap_knn       umap_embedding: exact torch cosine kNN passed as precomputed_knn
  umap_default   umap.UMAP(metric="cosine", n_neighbors=20, random_state=0), pynndescent kNN
Data: ReLU of a random projection of 10 Gaussian blobs, (N, 1024) float32. UMAP cases run
a small untimed warm-up fit first so numba compilation is not counted.

    python benchmarks/clustering_scale.py            # clustering at 5k and 20k, sklearn and UMAP at 5k
    python benchmarks/clustering_scale.py --full     # adds ours at 50k and sklearn at 20k
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

BASELINE = {"ours": "sklearn", "umap_knn": "umap_default"}


def relu_blobs(n: int, d: int = 1024, seed: int = 0) -> np.ndarray:
    """(n, d) float32: ReLU of a random projection of 10 Gaussian blobs in 64 dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, 64)).astype(np.float32)
    Z = centres[rng.integers(0, 10, n)] + 2.0 * rng.standard_normal((n, 64), dtype=np.float32)
    return np.maximum(Z @ rng.standard_normal((64, d), dtype=np.float32), 0)


def run_case(case: str, A: np.ndarray) -> np.ndarray:
    """Result of one case on A: (N, d): (N,) cluster ids or (N, 2) embedding."""
    if case == "ours":
        from inc_utils.clustering import agglomerative_labels
        return agglomerative_labels(A)
    if case == "sklearn":
        from sklearn.cluster import AgglomerativeClustering
        return AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="complete",
                                       distance_threshold=0.7).fit_predict(A)
    if case == "umap_knn":
        from inc_utils.clustering import umap_embedding
        return umap_embedding(A)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="ours at 50k, sklearn at 20k")
    parser.add_argument("--no-umap", action="store_true", help="skip the UMAP cases")
    parser.add_argument("--no-clustering", action="store_true", help="skip the clustering cases")
    parser.add_argument("--umap-sizes", type=int, nargs="+", default=[5000], help="N for the UMAP cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args.case, args.n, args.out)

    plan = [] if args.no_clustering else [("ours", 5000), ("sklearn", 5000), ("ours", 20000)]
    plan += [("sklearn", 20000), ("ours", 50000)] if args.full and not args.no_clustering else []
    plan += [] if args.no_umap else [(case, n) for n in args.umap_sizes for case in ("umap_knn", "umap_default")]
    with tempfile.TemporaryDirectory() as workdir:
        rows = pd.DataFrame([measure(case, n, workdir) for case, n in plan])
        ref = rows.set_index(["case", "n"])
        for i, row in rows.iterrows():
            key = (BASELINE.get(row.case), row.n)
            if key in ref.index:
                rows.loc[i, "time_vs_baseline"] = row.seconds / ref.loc[key, "seconds"]
                rows.loc[i, "mem_vs_baseline"] = row.peak_gb / ref.loc[key, "peak_gb"]
            if row.case in ("ours", "sklearn"):
                labels = np.load(row.result)
                rows.loc[i, "clusters"] = labels.max() + 1
                if key in ref.index and row.case == "ours":
                    from sklearn.metrics import adjusted_rand_score
                    rows.loc[i, "ari_vs_baseline"] = adjusted_rand_score(
                        labels, np.load(ref.loc[key, "result"]))
    print(rows.drop(columns="result").to_string(index=False, float_format="%.3g"))


if __name__ == "__main__":
    main()

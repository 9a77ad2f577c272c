"""Cost of measuring all 11 probe points of MLP-10 (width 1024) on Fashion-MNIST train (60k).

Cases, each in a fresh subprocess with 2 torch threads (``--threads``), reporting its wall and
CPU time and peak resident memory (VmHWM). Every case first times one plain forward pass over
the data in the same process, the unit of the "x forward" columns (the machine is shared, so
the unit is taken next to what it divides, and the CPU time is the steadier of the two):
  forward   only that forward pass: the memory of data + model
  stream    measure_model, train split: two streamed passes, float64 statistics, O(C·d) per layer
  store     baseline: keep every layer's activations (N x 11,024 float32, ~2.6 GB at 60k), then full
            per-class covariances, Σ_W and Σ_B (d x d, float64) and NC1 through an eigh pseudo-inverse
The stream and store cases also report NC1 and the relative within-class trace per layer, and
the parent prints their largest relative difference. Random initialisation (the cost does not
depend on the weights); BatchNorm in eval mode with its initial running statistics.
``--per-class N`` measures a class-balanced subset of N images per class (a small machine:
``--per-class 500`` stores 0.2 GB of activations); the ratios are what to compare.

    python benchmarks/metrics_cost.py [--per-class 6000] [--threads 2]
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import torch

from inc_utils import metrics
from inc_utils.capture import stream_features
from inc_utils.data import load_dataset
from inc_utils.models import MLP, probe_points

BATCH = 1000
CASES = ("forward", "stream", "store")


def peak_rss_gib() -> float:
    """Peak resident memory of this process (VmHWM), GiB."""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return kib / 2**20


def clock() -> np.ndarray:
    """(wall, CPU) seconds: the CPU time of this process is what to compare on a loaded machine."""
    return np.array([time.perf_counter(), time.process_time()])


def forward_pass(model, batches) -> np.ndarray:
    """(wall, CPU) seconds for one eval-mode, no-grad pass over the data."""
    model.eval()
    start = clock()
    with torch.no_grad():
        for x, _ in batches():
            model(x)
    return clock() - start


def store_and_measure(model, batches, n: int, C: int) -> dict[str, list[float]]:
    """Baseline: all activations in memory, then full covariance matrices per layer."""
    points = probe_points(model)
    acts: list[torch.Tensor] = []
    labels = torch.empty(n, dtype=torch.long)
    offset = 0

    def keep(features, logits, y):
        nonlocal offset
        if not acts:
            acts.extend(torch.empty(n, h[0].numel()) for h in features)
        for a, h in zip(acts, features):
            a[offset: offset + len(y)] = h.reshape(len(y), -1)
        labels[offset: offset + len(y)] = y
        offset += len(y)

    stream_features(model, batches, [p.module for p in points], keep)
    out = {metrics.NC1: [], metrics.REL_TRACE_W: []}
    for a in acts:
        H = a.double()
        means = torch.stack([H[labels == c].mean(0) for c in range(C)])
        sigma_w = sum((H[labels == c] - means[c]).T @ (H[labels == c] - means[c]) for c in range(C)) / n
        centred = means - H.mean(0)
        sigma_b = centred.T @ centred / C
        w, V = torch.linalg.eigh(sigma_b)
        w, V = w[-(C - 1):], V[:, -(C - 1):]
        out[metrics.NC1].append((torch.trace(sigma_w @ V @ torch.diag(1 / w) @ V.T) / C).item())
        tw, tb = torch.trace(sigma_w).item(), torch.trace(sigma_b).item()
        out[metrics.REL_TRACE_W].append(tw / (tw + tb))
    return out


def run_case(case: str, per_class: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = load_dataset("fashion_mnist", "train")
    data = data if per_class >= len(data) // data.num_classes else data.subset(per_class)

    def batches():
        return data.batches(BATCH)

    model = MLP(784, 10, depth=10, width=1024)
    forward_pass(model, lambda: [next(iter(batches()))])  # warm-up
    unit = forward_pass(model, batches)
    result = {"case": case, "samples": len(data), "forward_seconds": unit.tolist()}
    start = clock()
    if case == "stream":
        table = metrics.measure_model(model, batches, progress=False)
        for measure in (metrics.NC1, metrics.REL_TRACE_W):
            result[measure] = table[table["measure"] == measure].sort_values("layer")["value"].tolist()
    elif case == "store":
        result.update(store_and_measure(model, batches, len(data), data.num_classes))
    result["seconds"] = (unit if case == "forward" else clock() - start).tolist()
    result["peak_rss_gib"] = peak_rss_gib()
    return result


def main(per_class: int, threads: int) -> None:
    results = {}
    for case in CASES:
        proc = subprocess.run([sys.executable, __file__, case, str(per_class), str(threads)],
                              capture_output=True, text=True, check=True)
        results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"MLP-10 x 1024, Fashion-MNIST train, {results['forward']['samples']} samples, batch {BATCH}, "
          f"{threads} torch threads")
    print(f"{'case':8} {'seconds':>8} {'forward s':>10} {'x forward':>10} {'CPU s':>8} {'x forward CPU':>14} "
          f"{'peak RSS GiB':>13}")
    for case, r in results.items():
        (wall, cpu), (unit_wall, unit_cpu) = r["seconds"], r["forward_seconds"]
        print(f"{case:8} {wall:8.1f} {unit_wall:10.1f} {wall / unit_wall:10.2f} {cpu:8.1f} {cpu / unit_cpu:14.2f} "
              f"{r['peak_rss_gib']:13.2f}")
    s, b = results["stream"], results["store"]
    print(f"stream vs store: {s['seconds'][1] / b['seconds'][1]:.2f}x the CPU time, "
          f"{s['peak_rss_gib'] / b['peak_rss_gib']:.2f}x the peak memory")
    for measure in (metrics.NC1, metrics.REL_TRACE_W):
        diff = np.max(np.abs(np.subtract(s[measure], b[measure])) / np.abs(b[measure]))
        print(f"{measure}: largest relative difference stream vs store over 11 layers {diff:.1e}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in CASES:  # one case, in the subprocess main() starts
        print(json.dumps(run_case(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
    else:
        import argparse
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--per-class", type=int, default=6000, help="images per class (default 6000: all 60k)")
        parser.add_argument("--threads", type=int, default=2, help="torch threads per case (default 2)")
        args = parser.parse_args()
        main(args.per_class, args.threads)

"""Seconds per training epoch with 1 and with 2 torch threads, in one process: the ratio behind
``inc --threads`` / ``INC_THREADS`` and its default (one thread per process).

The two settings alternate for ``--repeats`` rounds of ``--epochs`` epochs each, so both see the
same background load; the best round of each is reported, and their ratio.

    python benchmarks/threads.py              # MLP-8, width 256, 500 synthetic images per class
    python benchmarks/threads.py --repeats 5
"""
from __future__ import annotations

import argparse
import time

import torch

from inc_utils.config import RunConfig
from inc_utils.data import make_synthetic
from inc_utils.models import build_for
from inc_utils.train import train_epoch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--n-per-class", type=int, default=500)
    args = p.parse_args()
    config = RunConfig(dataset="synthetic", depth=8, width=args.width, n_per_class=args.n_per_class, lr=0.01)
    data = make_synthetic("train", args.n_per_class, shape=(1, 28, 28))
    torch.manual_seed(0)
    model = build_for(config, data)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    order = torch.Generator().manual_seed(0)
    best = {1: float("inf"), 2: float("inf")}
    train_epoch(model, optimizer, data, config, order)  # warm-up
    for _ in range(args.repeats):
        for threads in best:
            torch.set_num_threads(threads)
            tic = time.perf_counter()
            for _ in range(args.epochs):
                train_epoch(model, optimizer, data, config, order)
            best[threads] = min(best[threads], (time.perf_counter() - tic) / args.epochs)
    print(f"MLP-8 width {args.width}, {len(data)} images, batch {config.batch_size}: seconds per epoch "
          f"1 thread {best[1]:.3f}, 2 threads {best[2]:.3f}; 2 threads / 1 thread = {best[2] / best[1]:.2f}")


if __name__ == "__main__":
    main()

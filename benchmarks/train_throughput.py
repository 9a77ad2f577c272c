"""Training throughput in seconds per model-epoch: a typical loop, train.py's loop, the batched trainer.

Variants, all in this process on one device, each timed over ``--epochs`` epochs after a
warm-up step (evaluation and checkpoints excluded), ``--repeats`` times round-robin; the
best repeat is reported (the least disturbed by other load on the machine):
  dataloader   a typical loop: DataLoader(TensorDataset(normalised float images), batch 128,
               shuffle) with host-to-device copies, one MLP, torch.optim.SGD
  resident     one MLP on device-resident data: inc_utils.train.train_epoch
  batched-K    K MLPs stacked (inc_utils.batched.train_epoch), K = 11 (and 33 with --k33);
               seconds per model-epoch = epoch time / K
The K configs spread lr over [0.01, 0.1], weight decay over [1e-4, 5e-3], seeds 0..K-1.

    python benchmarks/train_throughput.py                 # MLP-10, width 1024, Fashion-MNIST (GPU)
    python benchmarks/train_throughput.py --quick         # MLP-6, width 256, 300 images per class (CPU)
    bash benchmarks/gpu_check.sh                          # on a GPU: float32 and TF32, K = 11 and 33
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from inc_utils import batched
from inc_utils.config import RunConfig
from inc_utils.data import load_splits
from inc_utils.models import build_for
from inc_utils.settings import resolve_device
from inc_utils.train import loss_fn, train_epoch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(run_epoch, epochs: int, device: str) -> float:
    """Mean seconds of ``run_epoch()`` over ``epochs`` calls."""
    sync(device)
    tic = time.perf_counter()
    for _ in range(epochs):
        run_epoch()
    sync(device)
    return (time.perf_counter() - tic) / epochs


def dataloader_loop(cfg: RunConfig, device: str, workers: int):
    """The typical loop; returns (run one epoch, models per epoch)."""
    train, _ = load_splits(cfg, "cpu")
    loader = DataLoader(TensorDataset(train.normalize(train.x), train.y), batch_size=cfg.batch_size, shuffle=True,
                        num_workers=workers, pin_memory=device.startswith("cuda"))
    torch.manual_seed(cfg.seed)
    model = build_for(cfg, train).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def step(x, y):
        loss = loss_fn(model(x.to(device, non_blocking=True)), y.to(device, non_blocking=True), cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(*next(iter(loader)))
    return lambda: [step(x, y) for x, y in loader if len(y) > 1], 1


def resident_loop(cfg: RunConfig, device: str):
    """train.py's epoch; returns (run one epoch, models per epoch)."""
    train, _ = load_splits(cfg, device)
    torch.manual_seed(cfg.seed)
    model = build_for(cfg, train).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    order = torch.Generator(device=device).manual_seed(cfg.seed)
    x, y = next(train.batches(cfg.batch_size))
    loss_fn(model(x), y, cfg.loss).backward()
    optimizer.zero_grad(set_to_none=True)
    return lambda: train_epoch(model, optimizer, train, cfg, order), 1


def batched_loop(configs: list[RunConfig], device: str):
    """The batched trainer's epoch; returns (run one epoch, models per epoch)."""
    train, _ = batched.load_group_splits(configs, device, None)
    stack = batched.Stack.fresh(configs, train.data, device)
    orders = [torch.Generator(device=device).manual_seed(c.seed) for c in configs]
    idx = torch.arange(configs[0].batch_size, device=device).expand(len(configs), -1)
    batched.train_step(stack, *train.gather(idx), configs[0].loss)
    return lambda: batched.train_epoch(stack, train, orders, configs[0]), len(configs)


def sweep_configs(base: RunConfig, k: int) -> list[RunConfig]:
    lrs, wds = np.geomspace(0.01, 0.1, k), np.geomspace(1e-4, 5e-3, k)[::-1]
    return [base.replace(lr=float(lr), weight_decay=float(wd), seed=s) for s, (lr, wd) in enumerate(zip(lrs, wds))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="MLP-6, width 256, 300 images per class (for CPUs)")
    p.add_argument("--k33", action="store_true", help="also the batched trainer at K = 33")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per variant (after a warm-up step)")
    p.add_argument("--repeats", type=int, default=1, help="timings per variant, interleaved; the best is kept")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the typical loop")
    p.add_argument("--device", default=None)
    p.add_argument("--matmul-precision", choices=("highest", "high"), default="highest",
                   help="torch.set_float32_matmul_precision: 'high' lets CUDA use TF32 products")
    p.add_argument("--csv", default=None, help="also write the table here")
    args = p.parse_args()
    torch.set_float32_matmul_precision(args.matmul_precision)

    device = resolve_device(args.device)
    size = dict(depth=6, width=256, n_per_class=300) if args.quick else dict(depth=10, width=1024)
    base = RunConfig(dataset="fashion_mnist", batch_size=128, lr=0.05, epochs=args.epochs, lr_milestones=[], **size)
    variants = {"dataloader": dataloader_loop(base, device, args.workers), "resident": resident_loop(base, device)}
    for k in (11, 33) if args.k33 else (11,):
        variants[f"batched-{k}"] = batched_loop(sweep_configs(base, k), device)
    runs = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (run_epoch, models) in variants.items():
            runs[name].append(timed(run_epoch, args.epochs, device) / models)
    times = {name: min(t) for name, t in runs.items()}
    table = pd.DataFrame({"variant": list(times), "s_per_model_epoch": list(times.values())})
    table["speedup_vs_dataloader"] = times["dataloader"] / table.s_per_model_epoch
    table["speedup_vs_resident"] = times["resident"] / table.s_per_model_epoch
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu x {torch.get_num_threads()} threads"
    print(f"MLP-{base.depth} width {base.width}, fashion_mnist n_per_class={base.n_per_class}, {name}, "
          f"float32 matmul precision {args.matmul_precision}, best of {args.repeats} x {args.epochs} epochs")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.csv:
        table.assign(device=name, matmul_precision=args.matmul_precision).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()

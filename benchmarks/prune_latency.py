"""Inference latency and throughput of a network cut at each layer, against the whole network.

Times, in this process on one device, the full network and the truncated classifier of every
layer (``inc_utils.prune.truncate``: the layers up to the cut plus a d x C linear head) at batch
1 and batch 256, median of ``--repeats`` calls after a warm-up, in eval mode under
``torch.inference_mode``. Speed does not depend on the weights, so the network is freshly
initialised and the heads are zero. Prints per layer the fraction of multiply-adds kept and the
speed-up (full network's median seconds / the cut one's) at each batch size.

    python benchmarks/prune_latency.py                                 # MLP-10, width 1024, 3x32x32 (paper)
    python benchmarks/prune_latency.py --depth 8 --width 256 --in-shape 1 28 28   # the cpu scale's MLP-8
    python benchmarks/prune_latency.py --device cuda
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from inc_utils.models import build_model
from inc_utils.prune import Head, cost_table, cut_layers, speed_table, trunk, truncate
from inc_utils.settings import resolve_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="mlp", choices=["mlp", "convnet"])
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--in-shape", type=int, nargs=3, default=[3, 32, 32], metavar=("C", "H", "W"))
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    in_shape = tuple(args.in_shape)
    torch.manual_seed(0)
    model = build_model(args.arch, args.depth, in_shape=in_shape, num_classes=args.classes, width=args.width)
    model = model.to(device).eval()
    cut = {}
    for layer in cut_layers(model):
        with torch.no_grad():
            d = trunk(model, layer).to(device)(torch.zeros(1, *in_shape, device=device)).shape[1]
        cut[layer] = truncate(model, Head(layer, "ncc", torch.zeros(args.classes, d), torch.zeros(args.classes)))
    speed = speed_table(model, cut, in_shape, (1, 256), args.repeats)
    table = speed.pivot(index="layer", columns="batch", values="speedup").add_prefix("speedup, batch ")
    costs = cost_table(model, in_shape, args.classes).set_index("layer")[["macs_frac"]]
    table = costs.join(table, how="right").rename(index={-1: "full"}).fillna({"macs_frac": 1.0})
    base = speed[speed.layer == -1].set_index("batch")
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.arch}-{args.depth} (width {args.width}) on {in_shape}, {where}, median of {args.repeats}; "
          f"full network: {1e3 * base.loc[1, 'seconds']:.3f} ms at batch 1, "
          f"{base.loc[256, 'per_second']:,.0f} samples/s at batch 256")
    with pd.option_context("display.width", 200):
        print(table.to_string(float_format="{:.3f}".format))


if __name__ == "__main__":
    main()

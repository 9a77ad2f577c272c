"""How much the smoke results move with the CPU's arithmetic: the basis of the notebook checks' tolerances.

The same seeded run gives different last bits on other CPU code paths (``ATEN_CPU_CAPABILITY=default``,
``avx2``, ``avx512``) and thread counts, and SGD carries those bits through hundreds of epochs. This
trains the smoke runs of chapter 1 (and with ``--sweep`` chapter 2's sweep; ``params/smoke``) in a
fresh runs folder and writes their key
numbers (accuracies, layers of collapse, final-epoch NC measures per layer) as JSON::

    ATEN_CPU_CAPABILITY=default INC_THREADS=1 python benchmarks/cpu_paths.py run default-1.json
    python benchmarks/cpu_paths.py compare avx2-1.json default-1.json avx2-2.json
    python benchmarks/cpu_paths.py run seed-1.json --seed 1   # the same runs with another seed

``--seed`` gives the scale of what a result is: how far the numbers move between seeds, against
which the code paths' variation should be small.

``compare`` prints, against the first file, the largest absolute difference of accuracies, the
layers of collapse that differ, and for each NC measure the largest relative difference of one
layer and the largest shift of a run's whole list (geometric mean of the per-layer ratios), over
the layers where the measure is above ``--floor`` times the list's largest (tiny values carry no
result and are not checked).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from inc_utils import settings
from inc_utils.keynumbers import list_shift
from inc_utils.measure import measure_run
from inc_utils.metrics import COLLAPSE_MEASURE, MEASURES, collapse_layer
from inc_utils.session import scale_parameters
from inc_utils.sweep import configs_in, run_sweep
from inc_utils.train import train


def key_numbers(metrics: pd.DataFrame) -> dict:
    """Final-epoch numbers of one measured run: accuracies, layers of collapse, NC measures per layer (train)."""
    last = metrics[metrics.epoch == metrics.epoch.max()]
    net = last[last.measure == "net_acc"].set_index("split")["value"]
    train_rows = last[(last.split == "train") & (last.layer >= 0)]
    table = train_rows.pivot_table(index="measure", columns="layer", values="value")
    return {"train_acc": float(net["train"]), "test_acc": float(net["test"]),
            "collapse": {m: collapse_layer(last, m) for m in (COLLAPSE_MEASURE, "nc1", "cdnv")},
            "measures": {m: table.loc[m].tolist() for m in MEASURES if m in table.index}}


def run_all(out: Path, runs: str | None, sweep: bool, seed: int | None) -> None:
    applied = settings.apply(runs=runs or tempfile.mkdtemp(prefix="cpu-paths-"), progress=False)
    import torch
    numbers = {"capability": torch.backends.cpu.get_cpu_capability(), "threads": applied.threads, "runs": {}}
    tic = time.perf_counter()
    for config in configs_in(scale_parameters("01_intermediate_nc", "smoke")):
        run = train(config if seed is None else config.replace(seed=seed))
        metrics, _ = measure_run(run, epochs=[config.epochs])
        numbers["runs"][config.name] = key_numbers(metrics)      # keyed by the listed config, to compare
    configs = configs_in(scale_parameters("02_collapse_vs_generalization", "smoke")) if sweep else []
    run_sweep(configs)
    for config in configs:
        metrics, _ = measure_run(settings.runs_dir() / config.name, epochs=[config.epochs])
        numbers["runs"][config.name] = key_numbers(metrics)
    numbers["seconds"] = round(time.perf_counter() - tic)
    out.write_text(json.dumps(numbers, indent=1))
    print(f"{out}: {numbers['capability']}, {applied.threads} thread(s), {numbers['seconds']} s")


def compare(files: list[Path], floor: float) -> None:
    base, *others = [json.loads(f.read_text()) for f in files]
    for name, other in zip(files[1:], others):
        print(f"== {files[0].name} vs {name.name} ({other['capability']}, {other['threads']} thread(s))")
        acc, layers, rel, shift = 0.0, [], {}, {}
        for run, a in base["runs"].items():
            b = other["runs"][run]
            acc = max(acc, abs(a["test_acc"] - b["test_acc"]), abs(a["train_acc"] - b["train_acc"]))
            layers += [f"{run} {m}: {a['collapse'][m]} vs {b['collapse'][m]}"
                       for m in a["collapse"] if a["collapse"][m] != b["collapse"][m]]
            for m, values in a["measures"].items():
                top = max(abs(x) for x in values)
                ratios = [y / x for x, y in zip(values, b["measures"][m]) if abs(x) > floor * top and x * y > 0]
                if ratios:
                    rel[m] = max(rel.get(m, 0.0), *(abs(r - 1) for r in ratios))
                    shift[m] = max(shift.get(m, 0.0), abs(list_shift(values, b["measures"][m], floor)))
        print(f"largest accuracy difference: {acc:.4f}")
        print("layers of collapse that differ:", "; ".join(layers) or "none")
        print("largest relative difference per measure and layer (values above the floor):",
              ", ".join(f"{m} {v:.3f}" for m, v in rel.items()))
        print("largest shift of a run's whole list (geometric mean of the ratios - 1):",
              ", ".join(f"{m} {v:.3f}" for m, v in shift.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--runs", default=None, help="runs folder (default: a fresh temporary one)")
    r.add_argument("--sweep", action="store_true", help="also chapter 2's smoke sweep")
    r.add_argument("--seed", type=int, default=None, help="train chapter 1's runs with this seed instead")
    c = sub.add_parser("compare")
    c.add_argument("files", type=Path, nargs="+")
    c.add_argument("--floor", type=float, default=1e-3)
    args = p.parse_args()
    if args.command == "run":
        run_all(args.out, args.runs, args.sweep, args.seed)
    else:
        compare(args.files, args.floor)


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())

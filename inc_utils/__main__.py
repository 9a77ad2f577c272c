"""Command line: ``python -m inc_utils {train,measure,runs,sweep,reproduce} ...`` (also installed as ``inc``).

User mistakes (bad config, missing data, unknown run) exit with status 2 and one line
on stderr, without a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_config, parse_overrides
from .data import DatasetNotFoundError
from .sweep import MAX_GROUP


def _train(args) -> None:
    from .train import train
    config = load_config(args.config, parse_overrides(args.set))
    run = train(config, runs_dir=args.runs_dir, device=args.device, data_root=args.data_dir,
                download=args.download)
    print(f"{run.status()['status']}: {run.path}")


def _runs(args) -> None:
    import pandas as pd
    from .runs import list_runs
    table = list_runs(args.runs_dir)
    if table.empty:
        print("no runs yet")
        return
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.to_string(index=False))


def _measure(args) -> None:
    import pandas as pd
    from pathlib import Path
    from .measure import measure_run
    from .metrics import collapse_layer
    from .runs import Run, default_runs_dir
    path = Path(args.run)
    if not (path / "config.yaml").exists():
        path = Path(args.runs_dir or default_runs_dir()) / args.run
    if not (path / "config.yaml").exists():
        raise FileNotFoundError(f"no run {args.run!r} (looked for {path}/config.yaml); `inc runs` lists them")
    metrics, _ = measure_run(Run(path), device=args.device)
    last = metrics[(metrics.epoch == metrics.epoch.max()) & (metrics.split == "train") & (metrics.layer >= 0)]
    with pd.option_context("display.width", 200):
        print(last.pivot_table(index="measure", columns="layer", values="value").to_string(float_format="{:.3g}".format))
    print(f"layer of collapse (rel_trace_w < 0.2) at epoch {metrics.epoch.max()}: {collapse_layer(last)}")
    print(f"tables: {path / 'metrics.csv'}, {path / 'weight_spectra.csv'}")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _sweep(args) -> None:
    import pandas as pd
    from .sweep import load_configs, plan, run_sweep
    configs = load_configs(args.sweep)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        if args.dry_run:
            table = plan(configs, args.runs_dir)
            print(table.to_string(index=False))
            left = table[table.model_epochs_left > 0]
            print(f"{len(configs)} runs, {len(left)} to train, {int(table.model_epochs_left.sum())} model-epochs")
            return
        slurm = {"slurm_partition": args.partition} if args.partition else {}
        if args.timeout_min:
            slurm["timeout_min"] = args.timeout_min
        table = run_sweep(configs, runs_dir=args.runs_dir, executor=args.executor, jobs=args.jobs,
                          batched=args.batched, group_size=args.group_size, device=args.device,
                          data_root=args.data_dir, slurm=slurm)
        print(table.to_string(index=False))
        print(table.status.value_counts().to_string())


def _reproduce(args) -> None:
    import pandas as pd
    from .reproduce import plan_scale, reproduce
    if not args.dry_run:
        reproduce(args.scale)
        return
    table = plan_scale(args.scale)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.to_string(index=False))
    for chapter, rows in table.groupby("chapter", sort=False):
        print(f"{chapter}: {len(rows)} runs, {int(rows.model_epochs_left.sum())} model-epochs to train")


def _prune(args) -> None:
    import pandas as pd
    from .prune import prune_run
    from .runs import find_run
    if not (args.layer == "auto" or args.layer.isdigit()):
        raise ConfigError(f"--layer must be a layer number or 'auto', got {args.layer!r}")
    layer = args.layer if args.layer == "auto" else int(args.layer)
    table, layer = prune_run(find_run(args.run, args.runs_dir), layer, args.head, args.output, device=args.device,
                             data_root=args.data_dir)
    print(f"{args.run} cut at layer {layer} ({'auto: the layer of collapse, ' if args.layer == 'auto' else ''}"
          f"{args.head} head fitted on the training features), against the full network:")
    with pd.option_context("display.width", 200):
        print(table.to_string(float_format=lambda v: f"{v:,.0f}" if v >= 1000 else f"{v:.4g}"))
    if args.output:
        print(f"wrote {args.output}; load it with torch.export.load(path).module(), inputs normalised as in training")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inc", description="Intermediate Neural Collapse companion")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one run from a YAML config (a finished run is a cache hit)")
    t.add_argument("config", help="YAML run config")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    t.add_argument("--data-dir", default=None, help="directory holding the dataset files")
    t.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    t.add_argument("--runs-dir", default=None, help="runs directory (default: $INC_RUNS_DIR or ./runs)")
    t.set_defaults(func=_train)

    m = sub.add_parser("measure", help="measure NC1-4 at every checkpoint of a run (cached in its folder)")
    m.add_argument("run", help="run name (see `inc runs`) or run folder")
    m.add_argument("--device", default=None)
    m.add_argument("--runs-dir", default=None)
    m.set_defaults(func=_measure)

    s = sub.add_parser("sweep", help="train the missing runs of a sweep YAML or a chapter's params")
    s.add_argument("sweep", help="sweep YAML with 'base' and 'grid', or a chapter's params/<scale>/<chapter>.yaml")
    s.add_argument("--executor", default="local", choices=["local", "processes", "submitit-local", "slurm"])
    s.add_argument("--jobs", type=int, default=1, help="parallel processes for --executor processes")
    s.add_argument("--batched", action=argparse.BooleanOptionalAction, default=True,
                   help="train compatible MLPs together as one stacked model (default); --no-batched: one at a time")
    s.add_argument("--group-size", type=_positive_int, default=None,
                   help=f"most MLPs trained together in one batched group (default {MAX_GROUP}; lower it if "
                        "a GPU runs out of memory)")
    s.add_argument("--dry-run", action="store_true", help="list the runs and the model-epochs left")
    s.add_argument("--partition", default=None, help="SLURM partition")
    s.add_argument("--timeout-min", type=int, default=None, help="SLURM time limit per job (requeued after)")
    s.add_argument("--device", default=None)
    s.add_argument("--data-dir", default=None)
    s.add_argument("--runs-dir", default=None)
    s.set_defaults(func=_sweep)

    p_rep = sub.add_parser("reproduce", help="execute every chapter notebook with papermill into build/<scale>/")
    p_rep.add_argument("--scale", default="smoke", help="parameter set under params/ (smoke, paper)")
    p_rep.add_argument("--dry-run", action="store_true",
                       help="validate the parameter files and list the runs and model-epochs, train nothing")
    p_rep.set_defaults(func=_reproduce)

    c = sub.add_parser("prune", help="cut a run's network at one layer, fit a closed-form head, export it (.pt2)")
    c.add_argument("run", help="run name (see `inc runs`) or run folder")
    c.add_argument("--layer", default="auto", help="layer number, or 'auto' for the layer of collapse (default)")
    c.add_argument("--head", default="ridge", choices=["ncc", "ridge"],
                   help="nearest class centre, or least squares on one-hot targets (default)")
    c.add_argument("-o", "--output", default=None, help="write the truncated model here (torch.export, .pt2)")
    c.add_argument("--device", default=None)
    c.add_argument("--data-dir", default=None)
    c.add_argument("--runs-dir", default=None)
    c.set_defaults(func=_prune)

    r = sub.add_parser("runs", help="list runs with their status")
    r.add_argument("--runs-dir", default=None)
    r.set_defaults(func=_runs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, DatasetNotFoundError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m inc_utils {train,runs} ...`` (also installed as ``inc``).

User mistakes (bad config, missing data, unknown run) exit with status 2 and one line
on stderr, without a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .config import ConfigError, load_config, parse_overrides
from .data import DatasetNotFoundError


def _train(args) -> None:
    from .train import train
    config = load_config(args.config, parse_overrides(args.set))
    run = train(config, runs_dir=args.runs_dir, device=args.device, data_root=args.data_dir)
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inc", description="Intermediate Neural Collapse companion")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one run from a YAML config (a finished run is a cache hit)")
    t.add_argument("config", help="YAML run config")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    t.add_argument("--data-dir", default=None, help="directory holding the dataset files")
    t.add_argument("--runs-dir", default=None, help="runs directory (default: $INC_RUNS_DIR or ./runs)")
    t.set_defaults(func=_train)

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

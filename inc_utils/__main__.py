"""Command line: ``python -m inc_utils {train,measure,runs,sweep,reproduce,results} ...`` (also installed as ``inc``).

User mistakes (bad config, missing or damaged data, unknown run, a run another process is
writing, a read-only or full disk) exit with status 2 and one line on stderr, without a
traceback; Ctrl-C or SIGINT exits with status 130, SIGTERM with 143, each with one line saying
what is kept and how to resume (``stopping.py``; also when started in the background). A sweep
worker that died is one line and exit status 1.
A new subcommand is a ``_name(args)`` function plus its ``sub.add_parser`` block in ``parser``.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings

from . import stopping


def _spawned_child() -> bool:
    """Whether this is a sweep worker importing the parent's ``inc`` script (spawn start method)."""
    import multiprocessing
    return multiprocessing.parent_process() is not None


if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "inc" and not _spawned_child():
    stopping.install()  # before the heavy imports below: a Ctrl-C during them is one line too

try:
    from . import settings
    from .config import ConfigError, brief, load_config, parse_overrides
    from .data import DataFileError, DatasetNotFoundError
    from .runs import CorruptCheckpointError, DamagedRunError, RunLockedError
    from .sweep import MAX_GROUP, SweepWorkerDied
except KeyboardInterrupt:
    print("interrupted: nothing was started", file=sys.stderr)
    sys.exit(stopping.exit_status())

#: Errors that are the user's to fix: reported in one line, exit status 2.
USER_ERRORS = (ConfigError, DatasetNotFoundError, DataFileError, FileNotFoundError, RunLockedError,
               DamagedRunError, CorruptCheckpointError)
#: Disk errors reported the same way (read-only file system, no permission, disk or quota full).
DISK_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST)


def _train(args) -> None:
    from .train import train
    config = load_config(args.config, parse_overrides(args.set))
    run = train(config, runs_dir=args.runs_dir, device=args.device, data_root=args.data_dir,
                download=args.download)
    print(f"{run.status()['status']}: {run.path}")


def _runs(args) -> None:
    import pandas as pd
    from pathlib import Path
    from .runs import list_runs
    if args.runs_dir and not Path(args.runs_dir).is_dir():
        raise FileNotFoundError(f"--runs-dir {args.runs_dir}: no such directory")
    table = list_runs(args.runs_dir)
    if table.empty:
        print("no runs yet")
        return
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.to_string(index=False))


def _measure(args) -> None:
    import pandas as pd
    from .measure import measure_run
    from .metrics import COLLAPSE_MEASURE, COLLAPSE_THRESHOLD, collapse_layer
    from .runs import find_run
    run = find_run(args.run, args.runs_dir)
    path = run.path
    metrics, _ = measure_run(run, device=args.device, data_root=args.data_dir)
    last = metrics[(metrics.epoch == metrics.epoch.max()) & (metrics.split == "train") & (metrics.layer >= 0)]
    with pd.option_context("display.width", 200):
        print(last.pivot_table(index="measure", columns="layer", values="value").to_string(float_format="{:.3g}".format))
    print(f"layer of collapse ({COLLAPSE_MEASURE} < {COLLAPSE_THRESHOLD}) at epoch {metrics.epoch.max()}: "
          f"{collapse_layer(last)}")
    print(f"tables: {path / 'metrics.csv'}, {path / 'weight_spectra.csv'}")


def _positive_int(text: str) -> int:
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer below 10**9, got {brief(text)}")
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
    skipped = table.attrs.get("skipped", [])
    if skipped:
        raise RunLockedError(f"{len(skipped)} of the sweep's tasks were not trained: {skipped[0]}")


def _reproduce(args) -> None:
    import pandas as pd
    from .reproduce import describe_estimate, plan_scale, reproduce
    if not args.dry_run:
        reproduce(args.scale)
        return
    table = plan_scale(args.scale)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.to_string(index=False))
    for chapter, rows in table.groupby("chapter", sort=False):
        print(f"{chapter}: {len(rows)} runs, {int(rows.model_epochs_left.sum())} model-epochs to train")
    print(describe_estimate(table))


def _colab(args) -> None:
    from pathlib import Path
    from .colab import update
    from .settings import project_root
    root = project_root(Path.cwd())  # only the checkout you are in: never the one the package came from
    if root is None:
        raise FileNotFoundError(f"{Path.cwd()} is not inside a checkout of this project "
                                "(no pyproject.toml + inc_utils/)")
    url = update(root, args.branch)
    print(f"notebooks and README written for {url}" if url else
          "no git remote 'origin' and no [project.urls] Repository: notebooks say how to install, no badge")


def _results(args) -> None:
    import json
    from pathlib import Path
    from .claims import gather, replace_results, results_section
    from .runs import atomic_write_text
    root = settings.current().project or Path.cwd()
    build, readme = root / "build" / args.scale, root / "README.md"
    if not (build / "build.json").exists():
        raise FileNotFoundError(f"no finished build in {build}; run `make reproduce SCALE={args.scale}` first")
    section = results_section(gather(build), json.loads((build / "build.json").read_text()))
    try:
        text = replace_results(readme.read_text(), section)
    except ValueError as err:
        raise ConfigError(f"{readme}: {err}") from None
    atomic_write_text(readme, text)
    print(f"{readme}: Results from {build}")


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


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors in one line (exit status 2, as every user error)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="inc", description="Intermediate Neural Collapse companion")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads per process, also for the notebooks `reproduce` runs and sweep workers "
                        "(default: $INC_THREADS, else 1: on a shared CPU one thread is often fastest)")
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
    m.add_argument("--data-dir", default=None, help="directory holding the dataset files")
    m.add_argument("--runs-dir", default=None)
    m.set_defaults(func=_measure)

    s = sub.add_parser("sweep", help="train the missing runs of a sweep YAML or a chapter's params")
    s.add_argument("sweep", help="sweep YAML with 'base' and 'grid', or a chapter's params/<scale>/<chapter>.yaml")
    s.add_argument("--executor", default="local", choices=["local", "processes", "submitit-local", "slurm"])
    s.add_argument("--jobs", type=_positive_int, default=1, help="parallel processes for --executor processes")
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

    res = sub.add_parser("results", help="write the claims tables of build/<scale>/ into the README's Results section")
    res.add_argument("--scale", default="cpu", help="the build to take them from (default cpu)")
    res.set_defaults(func=_results)

    c = sub.add_parser("colab", help="write the repository's address (git remote origin) into pyproject.toml, "
                                     "the notebooks' install cells and Colab badges, and the README")
    c.add_argument("--branch", default="main", help="branch the Colab badges open (default: main)")
    c.set_defaults(func=_colab)

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
    """Run ``inc`` with ``argv``; the exit status. The process boundary: stopping on signals
    (``stopping.install``, here) and the settings (``settings.apply``, once the arguments are read)."""
    before = stopping.install()  # the caller's handlers come back on return (tests call main())
    try:
        return _main(argv)
    except KeyboardInterrupt as err:  # raised before or after _main's own handler (argument parsing)
        print(f"interrupted: {err.args[0] if err.args else INTERRUPTED}", file=sys.stderr)
        return stopping.exit_status()
    finally:
        stopping.restore(before)


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"  # one line each
    try:
        settings.apply(threads=args.threads, runs=getattr(args, "runs_dir", None))
        args.func(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in DISK_ERRNOS:
            raise
        print(f"error: cannot write {err.filename or ''}: {err.strerror}".replace(" :", ":"), file=sys.stderr)
        return 2
    except SweepWorkerDied as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"interrupted: {err.args[0] if err.args else INTERRUPTED}", file=sys.stderr)
        return stopping.exit_status()
    return 0


INTERRUPTED = ("runs keep their last checkpoint and are marked stopped; "
               "the same command again resumes them (finished runs are not redone)")


if __name__ == "__main__":
    sys.exit(main())

"""How much a chapter's training gains from two worker processes on two cores.

Chapters 1 and 6 (and 2) train their runs with ``executor: processes`` at the cpu scale: the runs
are split into tasks (a ticket chain is one task), the task with the most estimated work first,
and ``jobs`` single-threaded workers take them. This trains a chapter's runs (``sweep.configs_in``
of its parameters) both ways in fresh runs folders in one session: one after another in this
process (``executor="local"``), then in ``--jobs`` worker processes, and prints the ratio.

    .venv/bin/python benchmarks/parallel_runs.py                          # chapter 1, smoke scale
    .venv/bin/python benchmarks/parallel_runs.py --chapter 06_lottery_tickets --scale cpu

Chapter 6's networks as deep as the layer of collapse are not listed by ``configs_in`` (that layer
is known only once measured), so they are not timed here.
"""
import argparse
import tempfile
import time

from inc_utils import settings
from inc_utils.session import scale_parameters
from inc_utils.sweep import configs_in, run_sweep


def seconds(configs, executor: str, jobs: int) -> float:
    """Wall time of training ``configs`` from nothing with ``executor``."""
    with tempfile.TemporaryDirectory(prefix="parallel-runs-") as runs:
        tic = time.perf_counter()
        table = run_sweep(configs, runs_dir=runs, executor=executor, jobs=jobs, batched=False)
        elapsed = time.perf_counter() - tic
    if set(table["status"]) != {"done"}:
        raise SystemExit(f"not every run finished: {table['status'].value_counts().to_dict()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="01_intermediate_nc")
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    settings.apply(threads=1, progress=False)
    configs = configs_in(scale_parameters(args.chapter, args.scale))
    local = seconds(configs, "local", 1)
    parallel = seconds(configs, "processes", args.jobs)
    print(f"{args.chapter} at {args.scale}: {len(configs)} runs, one torch thread per process")
    print(f"  one after another in this process: {local:.0f} s")
    print(f"  {args.jobs} worker processes:             {parallel:.0f} s  ({local / parallel:.2f}x faster)")


if __name__ == "__main__":
    main()

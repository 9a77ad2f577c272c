"""How long a process takes to import the training code, with and without compiled bytecode.

`make setup` compiles every installed package's bytecode (uv's ``--compile-bytecode``; pip does it
by default). Without it, and where Python may not write ``__pycache__`` (``PYTHONDONTWRITEBYTECODE``
set, read-only installs), every process compiles torch's, scipy's and scikit-learn's sources again:
each test subprocess, notebook kernel and sweep worker. This times both in the same session, the
second by pointing ``-X pycache_prefix`` at an empty folder so no compiled file is found.

    .venv/bin/python benchmarks/startup.py [--repeats 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

IMPORT = "import inc_utils.train, inc_utils.measure"


def seconds(extra: list[str], repeats: int) -> float:
    """Median wall time of ``repeats`` fresh interpreters importing ``IMPORT``."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        subprocess.run([sys.executable, *extra, "-c", IMPORT], check=True, env=env)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        baseline = seconds(["-X", f"pycache_prefix={empty}"], args.repeats)
    compiled = seconds([], args.repeats)
    print(f"`{IMPORT}` in a fresh process (median of {args.repeats}):")
    print(f"  sources compiled at every start: {baseline:.2f} s")
    print(f"  bytecode compiled at install:    {compiled:.2f} s  ({baseline / compiled:.1f}x faster)")


if __name__ == "__main__":
    main()

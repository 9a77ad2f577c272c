"""Execute the chapter notebooks headlessly with papermill: ``make reproduce SCALE=smoke``.

For every ``notebooks/NN_*.py`` (jupytext py:percent, the source of truth) with a parameter
file ``params/<scale>/NN_*.yaml``: check that the file only sets parameters the notebook
declares, execute it, then render an HTML copy beside it. Training and measuring inside the
notebooks are cached by config hash, so a second reproduce only redoes what changed.

Whole or nothing: a scale is built into a fresh folder beside ``build/<scale>`` and swapped
in only when every chapter has run, so a failure or Ctrl-C leaves the previous build as it
was (one build of a scale at a time: ``build/.<scale>.lock``). Each chapter prints a line when it
starts and when it ends; the kernels' own stderr goes to ``build/.<scale>.kernels.log``.
The notebooks' kernels get this process's settings (``settings.environment``: runs folder, torch
threads) with that fresh folder as their build folder and progress bars off; this process's own
environment is left as it is.

The project folder (``params/``, ``notebooks/``, ``build/``, ``runs/``) is the one holding
the working directory, else the clone this package was imported from (``settings.project_root``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from . import book, settings
from .config import ConfigError, read_yaml
from .runs import atomic_write_text, current_umask, hold_lock
from .settings import project_root


def chapters(root: Path, scale: str) -> list[tuple[Path, Path]]:
    """(notebook source, parameter file) pairs for ``scale``, in chapter order."""
    params_dir = root / "params" / scale
    if not params_dir.is_dir():
        scales = sorted(p.name for p in (root / "params").glob("*") if p.is_dir())
        raise ConfigError(f"unknown scale {scale!r}; choose from {', '.join(scales) or 'none: no ' + str(root / 'params')}")
    found = [(nb, params_dir / f"{nb.stem}.yaml") for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))
             if (params_dir / f"{nb.stem}.yaml").exists()]
    if not found:
        raise ConfigError(f"no chapter has parameters in {params_dir}")
    return found


def check_parameters(notebook, params: dict, source: Path) -> None:
    """Reject parameter keys the notebook's ``parameters`` cell does not declare."""
    import papermill
    declared = set(papermill.inspect_notebook(notebook))
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ConfigError(f"{source}: unknown parameter(s) {', '.join(unknown)}; "
                          f"the notebook declares {', '.join(sorted(declared))}")


def _as_notebook(source: Path):
    import jupytext
    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def plan_scale(scale: str, root: Path | None = None) -> pd.DataFrame:
    """Dry run of ``reproduce``: validate every chapter's parameters (keys and run configs) and
    list the runs (their networks, whether they train batched) with the model-epochs still to train."""
    import nbformat
    from .sweep import configs_in, plan
    from .throughput import networks
    root = root or find_root()
    tables = []
    for source, params_file in chapters(root, scale):
        params = read_yaml(params_file)
        with tempfile.TemporaryDirectory() as tmp:  # writes nothing into the project
            notebook = Path(tmp) / f"{source.stem}.ipynb"
            nbformat.write(_as_notebook(source), notebook)
            check_parameters(str(notebook), params, params_file)
        tables.append(pd.concat([plan(configs_in(params)), networks(params)], axis=1).assign(chapter=source.stem))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return table.drop_duplicates("run")


def describe_estimate(plan_table: pd.DataFrame, root: Path | None = None) -> str:
    """The training time of ``plan_scale``'s table on each device of ``benchmarks/throughput.yaml``."""
    from .throughput import describe, estimate, read_table
    source = Path("benchmarks") / "throughput.yaml"
    path = (root or find_root()) / source
    if not path.is_file():
        return f"no {source} in this project: no training-time estimate"
    table = read_table(path)
    return describe(estimate(plan_table, table), str(source))


def _kernel_manager(log, env: dict[str, str]):
    """A kernel manager class whose kernels get ``env`` added to their environment and write their
    own stderr (kernel start-up warnings, tracebacks when a build is interrupted) to the open file
    ``log`` (None: the terminal); the cells' outputs still go into the notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class BuildKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["env"] = {**kw.get("env", os.environ), **env}
            await super()._async_launch_kernel(kernel_cmd, **kw, **({"stderr": log} if log else {}))

    return BuildKernelManager


def execute(source: Path, params_file: Path, out_dir: Path, kernel_log=None) -> Path:
    """Run one chapter into ``out_dir`` (the kernel's build folder, with the other settings this
    process's); returns the executed notebook's path. With ``kernel_log`` (an open file) the
    kernel's own stderr goes there."""
    import nbformat
    import papermill
    notebook = _as_notebook(source)
    params = read_yaml(params_file)
    tmp_in = out_dir / f".{source.stem}.input.ipynb"
    nbformat.write(notebook, tmp_in)
    try:
        check_parameters(str(tmp_in), params, params_file)
        target, tmp_out = out_dir / f"{source.stem}.ipynb", out_dir / f".{source.stem}.partial.ipynb"
        # progress bars off: tqdm output can time out papermill's IOPub channel
        env = settings.environment(settings.current().replace(build=out_dir, progress=False))
        papermill.execute_notebook(str(tmp_in), str(tmp_out), parameters=params, kernel_name="python3",
                                   language="python", cwd=str(out_dir), progress_bar=sys.stderr.isatty(),
                                   kernel_manager_class=_kernel_manager(kernel_log, env))
        os.replace(tmp_out, target)
    finally:
        tmp_in.unlink(missing_ok=True)
        (out_dir / f".{source.stem}.partial.ipynb").unlink(missing_ok=True)
    return target


def write_build_record(out_dir: Path, scale: str, seconds: float) -> dict:
    """Gather the chapters' claims into ``claims.csv`` and stamp the build in ``build.json``
    (scale, commit, UTC date, wall seconds, machine); returns the stamp."""
    import json
    import platform
    from datetime import datetime, timezone
    from .claims import gather
    from .runs import git_commit
    stamp = {"scale": scale, "commit": git_commit(short=True),
             "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "seconds": round(seconds),
             "machine": f"{os.cpu_count()} CPU cores ({platform.machine()})"}
    atomic_write_text(out_dir / "claims.csv", gather(out_dir).to_csv(index=False))
    atomic_write_text(out_dir / "build.json", json.dumps(stamp, indent=1))
    return stamp


def find_root() -> Path:
    """The project folder (see the module docstring); ``ConfigError`` if there is none."""
    root = project_root()
    if root is None:
        raise ConfigError(f"no project folder (with params/ and notebooks/) at or above {Path.cwd()}; "
                          "run this from the clone of the companion")
    return root


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``reproduce``; the message says what finished and how to resume."""


def reproduce(scale: str = "smoke", root: Path | None = None) -> list[Path]:
    """Execute every chapter at ``scale`` into a fresh folder, then swap it in as ``build/<scale>``.

    Returns the executed notebooks. On any error or Ctrl-C (``BuildInterrupted``) the previous
    ``build/<scale>`` is left untouched and the fresh folder is removed."""
    root = root or find_root()
    todo = chapters(root, scale)
    final = root / "build" / scale
    with contextlib.ExitStack() as stack:
        stack.enter_context(hold_lock(root / "build" / f".{scale}.lock", f"build/{scale}"))
        for stale in final.parent.glob(f"{settings.staging_prefix(scale)}*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        out_dir = Path(tempfile.mkdtemp(prefix=settings.staging_prefix(scale), dir=final.parent))
        out_dir.chmod(0o777 & ~current_umask())  # mkdtemp makes it private; the build is to be shared
        done, start = [], time.perf_counter()
        try:
            kernel_log = stack.enter_context(open(final.parent / f".{scale}.kernels.log", "w"))
            for i, (source, params_file) in enumerate(todo, 1):
                print(f"[{i}/{len(todo)}] {source.stem} ...", flush=True)
                tic = time.perf_counter()
                target = execute(source, params_file, out_dir, kernel_log)
                book.to_html(target)
                print(f"[{i}/{len(todo)}] {source.stem}: {time.perf_counter() - tic:.0f} s", flush=True)
                done.append(target)
            stamp = write_build_record(out_dir, scale, seconds=time.perf_counter() - start)
            book.write_index(out_dir, done, stamp)
            swap_in(out_dir, final)
        except KeyboardInterrupt:
            finished = ", ".join(p.stem for p in done) or "none"
            raise BuildInterrupted(f"chapters finished: {finished}; {final} is unchanged; the same command "
                                   "again resumes (finished training runs are cached)") from None
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
    return [final / p.name for p in done]


def swap_in(fresh: Path, final: Path) -> None:
    """Replace the folder ``final`` by ``fresh`` (two renames; the old one is then deleted)."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(fresh, final)
    shutil.rmtree(old, ignore_errors=True)

"""Execute the chapter notebooks headlessly with papermill: ``make reproduce SCALE=smoke``.

For every ``notebooks/NN_*.py`` (jupytext py:percent, the source of truth) with a parameter
file ``params/<scale>/NN_*.yaml``: check that the file only sets parameters the notebook
declares, execute it into ``build/<scale>/NN_*.ipynb`` (written to a temporary name and
moved into place only on success, so a failed run never leaves a partial notebook that
looks finished), then render an HTML copy beside it. Training and measuring inside the
notebooks are cached by config hash, so a second reproduce only redoes what changed.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from . import book
from .config import ConfigError, read_yaml
from .runs import project_root


def chapters(root: Path, scale: str) -> list[tuple[Path, Path]]:
    """(notebook source, parameter file) pairs for ``scale``, in chapter order."""
    params_dir = root / "params" / scale
    if not params_dir.is_dir():
        scales = sorted(p.name for p in (root / "params").iterdir() if p.is_dir())
        raise ConfigError(f"unknown scale {scale!r}; choose from {', '.join(scales)}")
    return [(nb, params_dir / f"{nb.stem}.yaml") for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))
            if (params_dir / f"{nb.stem}.yaml").exists()]


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
    root = root or project_root() or Path.cwd()
    tables = []
    for source, params_file in chapters(root, scale):
        params = read_yaml(params_file)
        tmp = root / "build" / f".{source.stem}.inspect.ipynb"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(_as_notebook(source), tmp)
        try:
            check_parameters(str(tmp), params, params_file)
        finally:
            tmp.unlink(missing_ok=True)
        tables.append(pd.concat([plan(configs_in(params)), networks(params)], axis=1).assign(chapter=source.stem))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return table.drop_duplicates("run")


def describe_estimate(plan_table: pd.DataFrame, root: Path | None = None) -> str:
    """The training time of ``plan_scale``'s table on each device of ``benchmarks/throughput.yaml``."""
    from .throughput import describe, estimate, read_table
    source = Path("benchmarks") / "throughput.yaml"
    table = read_table((root or project_root() or Path.cwd()) / source)
    return describe(estimate(plan_table, table), str(source))


def execute(source: Path, params_file: Path, out_dir: Path) -> Path:
    """Run one chapter into ``out_dir``; returns the executed notebook's path."""
    import nbformat
    import papermill
    notebook = _as_notebook(source)
    params = read_yaml(params_file)
    tmp_in = out_dir / f".{source.stem}.input.ipynb"
    nbformat.write(notebook, tmp_in)
    try:
        check_parameters(str(tmp_in), params, params_file)
        target, tmp_out = out_dir / f"{source.stem}.ipynb", out_dir / f".{source.stem}.partial.ipynb"
        papermill.execute_notebook(str(tmp_in), str(tmp_out), parameters=params, kernel_name="python3",
                                   language="python", cwd=str(out_dir), progress_bar=False)
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


def reproduce(scale: str = "smoke", root: Path | None = None) -> list[Path]:
    """Execute every chapter at ``scale``; returns the executed notebooks."""
    root = root or project_root() or Path.cwd()
    out_dir = root / "build" / scale
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("INC_PROGRESS", "0")            # tqdm output can time out papermill's IOPub
    os.environ.setdefault("INC_RUNS_DIR", str(root / "runs"))
    os.environ["INC_BUILD_DIR"] = str(out_dir)               # session.output_dir(): figures, claims
    os.environ.pop("INC_FIGURES_DIR", None)                # figures go to <build dir>/figures
    done, start = [], time.perf_counter()
    for source, params_file in chapters(root, scale):
        tic = time.perf_counter()
        target = execute(source, params_file, out_dir)
        book.to_html(target)
        print(f"{source.stem}: {time.perf_counter() - tic:.0f} s -> {target}", flush=True)
        done.append(target)
    if not done:
        raise ConfigError(f"no chapter has parameters in params/{scale}/")
    stamp = write_build_record(out_dir, scale, seconds=time.perf_counter() - start)
    book.write_index(out_dir, done, stamp)
    return done

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

from .config import ConfigError, read_yaml
from .runs import atomic_write_text, project_root


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


def to_html(notebook: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    atomic_write_text(target, body)
    return target


def reproduce(scale: str = "smoke", root: Path | None = None) -> list[Path]:
    """Execute every chapter at ``scale``; returns the executed notebooks."""
    root = root or project_root() or Path.cwd()
    out_dir = root / "build" / scale
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("INC_PROGRESS", "0")            # tqdm output can time out papermill's IOPub
    os.environ.setdefault("INC_RUNS_DIR", str(root / "runs"))
    os.environ["INC_BUILD_DIR"] = str(out_dir)               # session.output_dir(): figures, claims
    os.environ["INC_FIGURES_DIR"] = str(out_dir / "figures")
    done = []
    for source, params_file in chapters(root, scale):
        tic = time.perf_counter()
        target = execute(source, params_file, out_dir)
        to_html(target)
        print(f"{source.stem}: {time.perf_counter() - tic:.0f} s -> {target}", flush=True)
        done.append(target)
    if not done:
        raise ConfigError(f"no chapter has parameters in params/{scale}/")
    index = "".join(f'<li><a href="{p.stem}.html">{p.stem}</a></li>' for p in done)
    atomic_write_text(out_dir / "index.html", f"<h1>INC companion ({scale})</h1><ul>{index}</ul>")
    return done

"""Measure a run's checkpoints into tidy tables cached in the run folder.

``measure_run(run)`` loads each checkpoint, rebuilds the model, and streams the train and
test splits through ``metrics.measure_model`` (train set, eval mode). Results are cached per
checkpoint epoch in ``metrics.csv`` and ``weight_spectra.csv``; asking again measures only
the epochs not yet in the cache. Measuring holds the run's lock (``Run.lock``), so a run
being trained or measured by another process is refused in one line, not half-written. ``MEASURE_VERSION`` is recorded beside them: bump it when a
measure's definition changes and every cache is recomputed.

Table columns: ``run, epoch, split, layer, name, measure, value`` (see ``metrics.MEASURES``);
rows with ``layer == -1`` (name ``network``) hold the whole network's accuracy (``net_acc``)
at that epoch, for comparison with the NCC accuracy of each layer.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
from torch import nn

from .config import brief, one_line
from .data import Dataset, load_dataset, load_splits
from .metrics import COLLAPSE_MEASURE, COLLAPSE_THRESHOLD, NET_ACC, measure_model, weight_shapes, weight_spectra
from .models import build_for, probe_points
from .runs import CorruptCheckpointError, Run, atomic_write_text
from .settings import IncWarning, progress_enabled, resolve_device

MEASURE_VERSION = 3
METRICS_FILE, SPECTRA_FILE, VERSION_FILE = "metrics.csv", "weight_spectra.csv", "metrics.json"
METRICS_COLUMNS = ("run", "epoch", "split", "layer", "name", "measure", "value")


def load_model(run: Run, epoch: int, device: str = "cpu", data: Dataset | None = None) -> nn.Module:
    """The run's model with the weights of checkpoint ``epoch``, in eval mode on ``device``.

    ``data`` (any split of the run's dataset) gives the input shape and class count; by default
    the test split is loaded for that."""
    data = data if data is not None else load_dataset(run.config.dataset, "test")
    model = build_for(run.config, data)
    model.load_state_dict(run.load_checkpoint(epoch, map_location=device, like=model)["model"])
    return model.to(device).eval()


def newest_model(run: Run, device: str, data: Dataset) -> tuple[int, nn.Module]:
    """(epoch, model) of the run's newest checkpoint that loads (``load_model``); damaged ones are
    skipped with a warning; ``CorruptCheckpointError`` if none loads."""
    for epoch in reversed(run.checkpoint_epochs(warn=True)):
        try:
            return epoch, load_model(run, epoch, device, data)
        except CorruptCheckpointError as err:
            warnings.warn(f"skipping {err}", IncWarning, stacklevel=2)
    raise CorruptCheckpointError(f"{run.path}: no checkpoint loads; train the run again (`inc train`)")


def shapes_and_sizes(run: Run, data_root: str | Path | None = None) -> tuple[dict[int, tuple[int, int]], int, int]:
    """(layer -> weight-matrix shape, train-set size, test-set size) of ``run``: what chapter 1's
    claims need besides the measures (random baselines of the weights, binomial errors)."""
    train_set, test_set = load_splits(run.config, "cpu", data_root)
    _, model = newest_model(run, "cpu", train_set)
    return weight_shapes(probe_points(model)), len(train_set), len(test_set)


def _read_cache(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    version = run.path / VERSION_FILE
    metrics, spectra = run.path / METRICS_FILE, run.path / SPECTRA_FILE
    try:
        recorded = json.loads(version.read_text()) if version.exists() else {}
        fresh = isinstance(recorded, dict) and recorded.get("version") == MEASURE_VERSION
        if not (fresh and metrics.exists() and spectra.exists()):
            return pd.DataFrame(), pd.DataFrame()
        tables = pd.read_csv(metrics), pd.read_csv(spectra)
        for table, columns in zip(tables, (METRICS_COLUMNS, ("run", "epoch"))):
            if not set(columns) <= set(table.columns) or not pd.api.types.is_integer_dtype(table["epoch"]):
                raise ValueError(f"not the columns measuring writes: {brief(list(table.columns))}")
        return tables
    except (OSError, UnicodeDecodeError, ValueError) as err:  # a damaged cache is measured again
        warnings.warn(f"{run.path}: measuring again, the cached tables are damaged ({one_line(err)})", IncWarning,
                      stacklevel=3)
        return pd.DataFrame(), pd.DataFrame()


def measure_run(run: Run | str | Path, *, epochs: list[int] | None = None, batch_size: int = 1024,
                device: str | None = None, data_root: str | Path | None = None,
                progress: bool | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, weight spectra) of ``run`` at ``epochs`` (default: every checkpoint), cached.

    By default a damaged checkpoint is skipped with a warning; one asked for in ``epochs``
    raises ``CorruptCheckpointError``."""
    run = run if isinstance(run, Run) else Run(Path(run))
    asked = epochs is not None
    epochs = run.checkpoint_epochs(warn=True) if epochs is None else list(epochs)
    missing_files = sorted(set(epochs) - set(run.checkpoint_epochs()))
    if not epochs or missing_files:
        raise FileNotFoundError(f"{run.path}: no checkpoint for epoch(s) {missing_files or 'any'}; "
                                f"train the run first (`inc train`), checkpoints: {run.checkpoint_epochs()}")
    with run.lock():
        metrics, spectra = _read_cache(run)
        missing = [e for e in epochs if metrics.empty or e not in set(metrics["epoch"])]
        if missing:
            metrics, spectra = _measure_epochs(run, missing, metrics, spectra, asked, batch_size, device,
                                               data_root, progress)
    keep = metrics["epoch"].isin(epochs)
    return metrics[keep].reset_index(drop=True), spectra[spectra["epoch"].isin(epochs)].reset_index(drop=True)


def _measure_epochs(run: Run, epochs: list[int], metrics: pd.DataFrame, spectra: pd.DataFrame, strict: bool,
                    batch_size: int, device: str | None, data_root, progress: bool | None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cached tables with ``epochs`` measured and added, written back to the run folder."""
    device = resolve_device(device)
    train_set, test_set = load_splits(run.config, device, data_root)
    new_metrics, new_spectra = [metrics], [spectra]
    for epoch in epochs:
        try:
            model = load_model(run, epoch, device, train_set)
        except CorruptCheckpointError as err:
            if strict:
                raise
            warnings.warn(f"not measured: {err}", IncWarning, stacklevel=3)
            continue
        table = measure_model(model, lambda: train_set.batches(batch_size), lambda: test_set.batches(batch_size),
                              progress=progress_enabled(progress))
        new_metrics.append(table.assign(run=run.name, epoch=epoch))
        new_spectra.append(weight_spectra(probe_points(model)).assign(run=run.name, epoch=epoch))
    if len(new_metrics) == 1:  # every checkpoint asked for was damaged
        if metrics.empty:
            raise CorruptCheckpointError(f"{run.path}: none of the checkpoints {epochs} loads")
        return metrics, spectra
    metrics = _tidy(pd.concat(new_metrics, ignore_index=True))
    spectra = pd.concat(new_spectra, ignore_index=True)
    spectra = spectra[["run", "epoch", *[c for c in spectra.columns if c not in ("run", "epoch")]]]
    atomic_write_text(run.path / METRICS_FILE, metrics.to_csv(index=False))
    atomic_write_text(run.path / SPECTRA_FILE, spectra.to_csv(index=False))
    atomic_write_text(run.path / VERSION_FILE, json.dumps({"version": MEASURE_VERSION}))
    return metrics, spectra


def _tidy(table: pd.DataFrame) -> pd.DataFrame:
    return table[list(METRICS_COLUMNS)].sort_values(["epoch", "split", "layer"], kind="stable").reset_index(drop=True)


def collapse_summary(configs: list, *, runs_dir: str | Path | None = None, measure: str = COLLAPSE_MEASURE,
                     threshold: float = COLLAPSE_THRESHOLD, rule: str = "stays", accuracy_floor: float = 0.35,
                     train_accuracy_floor: float = 0.0, device: str | None = None,
                     data_root: str | Path | None = None, progress: bool | None = None) -> pd.DataFrame:
    """One row per config: hyperparameters, status, final accuracies, layer of collapse.

    Each finished run is measured at its last epoch only (cached like ``measure_run``);
    ``measure``, ``threshold`` and ``rule`` go to ``metrics.collapse_layer``.
    ``included`` is False for runs that diverged, failed, are unfinished, end below
    ``accuracy_floor`` test accuracy (thesis 4.2 leaves out models under 35%), or below
    ``train_accuracy_floor`` train accuracy (Fig 4.2.1's caption crops networks that "failed to
    converge to interpolating the dataset"; the thesis gives no number); ``reason`` says why.
    """
    from .metrics import collapse_layer
    rows = []
    for cfg in configs:
        run = Run.for_config(cfg, runs_dir)
        status = run.status()["status"]
        row = {"run": cfg.name, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "seed": cfg.seed, "status": status,
               "train_acc": float("nan"), "test_acc": float("nan"), "collapse_layer": None}
        if status == "done":
            metrics, _ = measure_run(run, epochs=[cfg.epochs], device=device, data_root=data_root, progress=progress)
            net = metrics[metrics["measure"] == NET_ACC].set_index("split")["value"]
            row.update(train_acc=net["train"], test_acc=net["test"],
                       collapse_layer=collapse_layer(metrics, measure, threshold, rule=rule))
        reason = (status if status != "done"
                  else f"test accuracy below {accuracy_floor:g}" if not row["test_acc"] >= accuracy_floor
                  else f"train accuracy below {train_accuracy_floor:g}" if not row["train_acc"] >= train_accuracy_floor
                  else "")
        rows.append({**row, "included": not reason, "reason": reason})
    return pd.DataFrame(rows).astype({"collapse_layer": "Int64"})

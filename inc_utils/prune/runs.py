"""``cut`` applied to trained runs: one run cut at a layer (``inc prune``), and the earliest layer
that keeps the accuracy across a sweep's runs (chapter 5). Data, checkpoints and measurements come
from the run folders; the cutting itself is ``prune.cut``'s."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import ConfigError
from ..data import load_splits
from ..metrics import COLLAPSE_MEASURE, COLLAPSE_THRESHOLD
from ..models import accuracy
from ..settings import resolve_device
from .cut import (HEADS, MAX_RIDGE_FEATURES, CutError, _chain, check_layer, cost, earliest_keeping, export,
                  fit_heads, layer_table, speed_table, truncate)


def prune_run(run, layer: int | str = "auto", head: str = "ridge", output: str | Path | None = None, *,
              device: str | None = None, data_root: str | Path | None = None,
              repeats: int = 50) -> tuple[pd.DataFrame, int]:
    """Cut ``run`` (a ``Run``) at its newest checkpoint that loads: ``layer`` a number or ``"auto"`` (the layer
    of collapse, rule of ``metrics.collapse_layer``), the ``head`` fitted on the train split
    (ridge penalty: the run's weight decay).
    Writes the truncated model to ``output`` (``export``) if given. Returns a table comparing
    it with the full network (rows: test accuracy, parameters, multiply-adds, batch-1 latency,
    batch-256 throughput; columns ``full, cut, ratio``) and the layer cut at."""
    from ..measure import measure_run, newest_model
    from ..metrics import collapse_layer
    if not run.checkpoint_epochs():
        raise FileNotFoundError(f"run {run.name} has no checkpoints; train it first (`inc train`)")
    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
    device = resolve_device(device)
    train_set, test_set = load_splits(run.config, device, data_root)
    newest, model = newest_model(run, device, train_set)  # a damaged newest one is skipped, as measuring does
    _chain(model)  # an architecture where cutting is not defined fails here, before any measuring
    if layer == "auto":
        metrics, _ = measure_run(run, epochs=[newest], device=device, data_root=data_root)
        layer = collapse_layer(metrics)
        if layer is None:
            raise CutError(f"run {run.name} has no layer of collapse at epoch {newest} "
                           f"({COLLAPSE_MEASURE} never stays below {COLLAPSE_THRESHOLD}); pass --layer N")
    check_layer(model, int(layer))
    layer = int(layer)
    fitted = fit_heads(model, lambda: train_set.batches(1024), [layer], heads=(head,),
                       ridge=run.config.weight_decay)
    if (layer, head) not in fitted:
        raise CutError(f"layer {layer} is wider than {MAX_RIDGE_FEATURES} features, too wide for the ridge "
                       f"head's (d + 1)^2 Gram matrix; use --head ncc")
    cut = truncate(model, fitted[layer, head])
    full_cost, cut_cost = cost(model, train_set.in_shape), cost(cut, train_set.in_shape)
    speed = speed_table(model, {layer: cut}, train_set.in_shape, repeats=repeats).set_index(["layer", "batch"])
    rows = {"test accuracy": (accuracy(model, test_set), accuracy(cut, test_set)),
            "parameters": (full_cost["params"], cut_cost["params"]),
            "multiply-adds per sample": (full_cost["macs"], cut_cost["macs"]),
            "latency, batch 1 (ms)": (1e3 * speed.loc[(-1, 1), "seconds"], 1e3 * speed.loc[(layer, 1), "seconds"]),
            "samples/s, batch 256": (speed.loc[(-1, 256), "per_second"], speed.loc[(layer, 256), "per_second"])}
    table = pd.DataFrame(rows, index=["full", "cut"]).T
    table["ratio"] = table["cut"] / table["full"]
    if output is not None:
        export(cut, output, train_set.in_shape)
    return table, layer


# ----------------------------------------------------------------------------- across a sweep
def sweep_keeps(configs: list, *, tolerance: float = 0.01, measure: str = COLLAPSE_MEASURE,
                threshold: float = COLLAPSE_THRESHOLD,
                accuracy_floor: float = 0.35, train_accuracy_floor: float = 0.0, runs_dir: str | Path | None = None,
                device: str | None = None, data_root: str | Path | None = None) -> pd.DataFrame:
    """``measure.collapse_summary`` of finished runs plus, for each included run (MLP or ConvNet),
    the earliest layer whose NCC / ridge head keeps its test accuracy within ``tolerance``
    (columns ``keeps_ncc``, ``keeps_ridge``; ridge penalty = the run's weight decay) and
    ``num_layers``. ResNets are left out (``reason``): their cuts exist only at block boundaries."""
    from ..measure import collapse_summary, load_model
    from ..models import num_layers
    from ..runs import Run
    device = resolve_device(device)
    summary = collapse_summary(configs, runs_dir=runs_dir, measure=measure, threshold=threshold,
                               accuracy_floor=accuracy_floor, train_accuracy_floor=train_accuracy_floor,
                               device=device, data_root=data_root)
    keeps = {"keeps_ncc": [], "keeps_ridge": []}
    for cfg, (_, row) in zip(configs, summary.iterrows()):
        if cfg.arch == "resnet" and row["included"]:
            summary.loc[row.name, ["included", "reason"]] = (False, "ResNet: cut only at block boundaries")
        if not summary.loc[row.name, "included"]:
            keeps["keeps_ncc"].append(None)
            keeps["keeps_ridge"].append(None)
            continue
        train_set, test_set = load_splits(cfg, device, data_root)
        model = load_model(Run.for_config(cfg, runs_dir), cfg.epochs, device, train_set)
        table = layer_table(model, lambda: train_set.batches(1024), lambda: test_set.batches(1024),
                            train_set.in_shape, ridge=cfg.weight_decay)
        for head in HEADS:
            keeps[f"keeps_{head}"].append(earliest_keeping(table, head, tolerance))
    layers = [num_layers(c.arch, c.depth) for c in configs]
    return summary.assign(architecture=[f"{c.arch.upper()}-{c.depth} on {c.dataset}" for c in configs],
                          num_layers=layers, **{k: pd.array(v, dtype="Int64") for k, v in keeps.items()})

"""Estimated training time: model-epochs left x measured seconds per model-epoch.

The measurements are a small table, ``benchmarks/throughput.yaml``: one row per device and
network (dataset, arch, depth, width), optionally only for runs trained batched or alone, with
its seconds per model-epoch.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

NETWORK = ["dataset", "arch", "depth", "width"]


def read_table(path: str | Path) -> pd.DataFrame:
    """The throughput table: device, the ``NETWORK`` columns, batched (True, False or None: either), seconds."""
    table = pd.DataFrame(yaml.safe_load(Path(path).read_text()) or [],
                         columns=["device", *NETWORK, "batched", "seconds"])
    return table.astype({"batched": object}).where(table.notna(), None)


def networks(params: dict) -> pd.DataFrame:
    """The network of each run a chapter's ``params`` ask for (``sweep.configs_in`` order, tickets
    included), and whether it trains batched: an MLP in a sweep of several runs, unless
    ``batched`` is off."""
    from .config import from_dict
    from .sweep import SweepConfig, configs_in
    batched = set()
    if params.get("batched", True):
        for sweep in params.get("sweeps", {}).values():
            group = from_dict(sweep, SweepConfig).configs()
            batched |= {c.name for c in group if c.arch == "mlp" and len(group) > 1}
    configs = configs_in(params)
    return pd.DataFrame({**{field: [getattr(c, field) for c in configs] for field in NETWORK},
                         "batched": [c.name in batched for c in configs]})


def _seconds(measured: pd.DataFrame, run) -> float | None:
    for row in measured.itertuples():
        if all(getattr(row, f) == getattr(run, f) for f in NETWORK) and row.batched in (None, run.batched):
            return row.seconds
    return None


def estimate(plan: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per device: hours to train the ``plan``'s model-epochs left (columns ``NETWORK``, batched,
    model_epochs_left) over the runs it has a measurement for, and the model-epochs it has not."""
    rows = []
    for device, measured in table.groupby("device", sort=False):
        seconds = pd.Series([_seconds(measured, run) for run in plan.itertuples()], index=plan.index, dtype=float)
        known = seconds.notna()
        rows.append({"device": device, "hours": float((plan.model_epochs_left * seconds)[known].sum()) / 3600,
                     "model_epochs": int(plan.model_epochs_left[known].sum()),
                     "unmeasured_model_epochs": int(plan.model_epochs_left[~known].sum())})
    return pd.DataFrame(rows, columns=["device", "hours", "model_epochs", "unmeasured_model_epochs"])


def describe(estimates: pd.DataFrame, source: str) -> str:
    """The estimate as lines of text for ``inc reproduce --dry-run``."""
    lines = [f"estimated training time (model-epochs x seconds per model-epoch measured in {source};"
             " other devices are not measured):"]
    for row in estimates.itertuples():
        took = f"{row.hours:.1f} h" if row.hours >= 1 else f"{row.hours * 60:.1f} min"
        text = f"  {row.device}: {took} for {row.model_epochs} model-epochs"
        if row.unmeasured_model_epochs:
            text += f", plus {row.unmeasured_model_epochs} model-epochs of networks not measured on it"
        lines.append(text)
    return "\n".join(lines)

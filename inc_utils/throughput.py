"""Estimated training time: model-epochs left x measured seconds per model-epoch.

The measurements are a small table, ``benchmarks/throughput.yaml``: one row per device and
network (dataset, arch, depth, width) with its seconds per model-epoch.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

NETWORK = ["dataset", "arch", "depth", "width"]


def read_table(path: str | Path) -> pd.DataFrame:
    """The throughput table: columns device, dataset, arch, depth, width, seconds."""
    return pd.DataFrame(yaml.safe_load(Path(path).read_text()) or [],
                        columns=["device", *NETWORK, "seconds"])


def estimate(plan: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per device: hours to train the ``plan``'s model-epochs left (columns of ``NETWORK`` and
    ``model_epochs_left``) over the networks it has measured, and the model-epochs it has not."""
    rows = []
    for device, measured in table.groupby("device", sort=False):
        joined = plan.merge(measured[NETWORK + ["seconds"]], on=NETWORK, how="left")
        known = joined.seconds.notna()
        rows.append({"device": device,
                     "hours": float((joined.model_epochs_left * joined.seconds)[known].sum()) / 3600,
                     "model_epochs": int(joined.model_epochs_left[known].sum()),
                     "unmeasured_model_epochs": int(joined.model_epochs_left[~known].sum())})
    return pd.DataFrame(rows, columns=["device", "hours", "model_epochs", "unmeasured_model_epochs"])


def describe(estimates: pd.DataFrame, source: str) -> str:
    """The estimate as lines of text for ``inc reproduce --dry-run``."""
    lines = [f"estimated training time (model-epochs x seconds per model-epoch measured in {source}):"]
    for row in estimates.itertuples():
        took = f"{row.hours:.1f} h" if row.hours >= 1 else f"{row.hours * 60:.1f} min"
        text = f"  {row.device}: {took} for {row.model_epochs} model-epochs"
        if row.unmeasured_model_epochs:
            text += f", plus {row.unmeasured_model_epochs} model-epochs of networks not measured on it"
        lines.append(text)
    if not any("GPU" in d for d in estimates.device):
        lines.append("  GPU: not measured yet (run benchmarks/gpu_check.sh and add its numbers to the table)")
    return "\n".join(lines)

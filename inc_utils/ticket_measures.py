"""What chapter 6 measures of lottery tickets: densities per layer, costs of sparse networks, and the
accuracy of each family of small networks against its remaining parameters (thesis 5.5.2).

Costs count what a sparse network needs: ``params`` the nonzero parameter entries (masked weights
are zeros; BatchNorm scales and shifts count), ``macs`` the multiply-adds of Linear/Conv modules for
one sample with their nonzero weights only (a Linear with ``k`` nonzero weights: ``k``; a Conv:
``k`` per output position). For a dense network they equal ``prune.cost``'s counts.
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from . import prune as P
from .capture import Batches
from .lottery import load_masks
from .masks import densities
from .runs import Run


def nonzero_cost(module: nn.Module, in_shape: tuple[int, ...]) -> dict[str, int]:
    """``params`` and ``macs`` of ``module`` counting nonzero weights only (``prune.cost``)."""
    return P.cost(module, in_shape, nonzero=True)


def density_table(runs: dict[tuple, Run]) -> pd.DataFrame:
    """Per run and layer, the share of its weights the mask keeps. ``runs``: key -> a round's run,
    keys ``(seed, round, family)``. Columns ``seed, round, family, layer, density``: ``layer`` is
    the probe layer whose features the pruned weight reads (the module's input, as everywhere)."""
    rows = [(seed, rnd, family, layer, d) for (seed, rnd, family), run in runs.items()
            for layer, d in enumerate(densities(load_masks(run)))]
    return pd.DataFrame(rows, columns=["seed", "round", "family", "layer", "density"])


def cut_accuracy(model: nn.Module, layer: int, train_batches: Batches, test_batches: Batches,
                 in_shape: tuple[int, ...], ridge: float) -> dict[str, float]:
    """Chapter 5's cut: ``model`` kept up to ``layer`` with a ridge head fitted in closed form on the
    training features. ``accuracy`` on ``test_batches``, ``params`` and ``macs`` (``nonzero_cost``)."""
    head = P.fit_heads(model, train_batches, [layer], heads=("ridge",), ridge=ridge)[layer, "ridge"]
    table = P.evaluate_heads(model, {(layer, "ridge"): head}, test_batches)
    return {"accuracy": float(table.loc[table["head"] == "ridge", "accuracy"].item()),
            **nonzero_cost(P.truncate(model, head), in_shape)}


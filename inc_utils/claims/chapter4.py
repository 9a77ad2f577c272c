"""Chapter 4's claims (thesis 4.4): PCA and sparsity.

Rules not yet noise-aware: each row still carries a bare threshold verdict (``legacy``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import metrics as M
from .core import NO, NOT_MEASURABLE, YES, bootstrap_spearman, fmt as _fmt, legacy as Claim, spearman, table, verdict


def chapter4(components: dict[int, int], spectrum: pd.DataFrame, neurons: pd.DataFrame, collapse: int | None,
             num_classes: int = 10, level: float = 0.01, top: int = 10) -> pd.DataFrame:
    """Thesis 4.4 on one run: ``components`` {layer: components to leave < ``level`` of the variance},
    ``spectrum`` = ``spectra.spectrum_table``, ``neurons`` = ``spectra.neuron_table`` (hidden layers)."""
    comp = pd.Series(components).sort_index()
    last = int(comp.index.max())
    if collapse is None or collapse > last or collapse <= int(comp.index.min()):
        why = "no collapse layer with hidden layers on both sides"
        return table([Claim(c, t, why, NOT_MEASURABLE) for c, t in (
            (f"After collapse at most C = {num_classes} components hold all but {level:g} of the variance",
             "4.4.1, Fig 4.4.1b"),
            ("The leading principal directions align more with neurons after collapse", "4.4.2, Fig 4.4.2"),
            ("Neuron sparsity spreads to extremes after collapse", "4.4.3, Fig 4.4.3"))])
    after = comp.loc[collapse:]
    corr = spectrum[spectrum["component"] < top].groupby("layer")["corresponding_dim"].mean()
    spread = neurons.groupby("layer")["sparsity"].std()
    pre, post = lambda s: s.loc[:collapse - 1].mean(), lambda s: s.loc[collapse:].mean()
    return table([
        Claim(f"After collapse at most C = {num_classes} components hold all but {level:g} of the variance",
              "4.4.1, Fig 4.4.1b: the data occupy a much smaller space from the collapse layer on",
              f"components per layer {int(comp.index.min())}-{last}: {', '.join(str(int(c)) for c in comp)}",
              verdict(bool(after.max() <= num_classes))),
        Claim(f"The leading principal directions align more with neurons after collapse "
              f"(lower ℓ1 corresponding dimensionality of the top {top})",
              "4.4.2, Fig 4.4.2: about d before collapse, plateaus well below d after",
              f"mean before: {pre(corr):.0f}, after: {post(corr):.0f}", verdict(bool(post(corr) < pre(corr)))),
        Claim("Neuron sparsity spreads to extremes after collapse (larger spread across neurons)",
              "4.4.3, Fig 4.4.3: tightly around 0.6 before; extremely sparse and non-sparse neurons after",
              f"std of neuron sparsity, mean before: {pre(spread):.3f}, after: {post(spread):.3f}",
              verdict(bool(post(spread) > pre(spread)))),
    ])

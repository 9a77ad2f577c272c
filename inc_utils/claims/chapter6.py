"""Chapter 6's claims: lottery tickets against the layer of collapse (thesis 1.3.1, 5.5.2, 6.3).

Inputs are the chapter's tidy tables:

* ``accuracy``: one row per network, columns ``seed, family, round, accuracy, params``; families
  ``dense`` (the parent run), ``ticket`` (IMP round ``round``; round 0 is the dense network
  retrained on the rounds' schedule), ``random`` (the random-mask control of that round),
  ``cut`` (the dense network cut at the layer of collapse, chapter 5's ridge head), ``ticket cut``
  (the ticket cut there) and ``shallow`` (a network as deep as the layer of collapse, from scratch);
* ``density``: ``ticket_measures.density_table`` of the magnitude tickets;
* ``collapse``: one row per network with columns ``seed, family, round, collapse_layer,
  last_rel_trace`` (the relative within-class trace of the last layer), families ``dense`` and ``ticket``.

Noise: test accuracies are binomial over ``n_test`` images (``Z`` standard errors of a
difference); with two or more seeds the margin is at least the range of the effect over seeds.
Claims that rest on a quantity with no binomial noise (densities, layers of collapse) need two
seeds and are ``unmeasurable`` with one.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .core import Z, difference_se, judge, table, unmeasurable

#: A layer has collapsed when its relative within-class trace is below this (thesis 4.1.1).
COLLAPSE_THRESHOLD = 0.2


def _spread(values) -> float:
    """Range of per-seed values; NaN with fewer than two."""
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.ptp(values)) if len(values) >= 2 else math.nan


def _accuracy_margin(per_seed: pd.Series, p1: float, p2: float, n_test: int) -> tuple[float, str]:
    """Margin of an accuracy difference: Z binomial SEs, or the range over seeds if larger."""
    binomial = Z * difference_se(p1, n_test, p2, n_test)
    spread = _spread(per_seed.tolist())
    if math.isnan(spread) or spread <= binomial:
        return binomial, f"{Z:g} binomial SEs over {n_test} test images" + ("" if math.isnan(spread) else
                                                                             f" (seed range {spread:.3f})")
    return spread, f"range over {len(per_seed)} seeds (> {Z:g} binomial SEs, {binomial:.3f})"


def _acc(accuracy: pd.DataFrame, family: str, rnd: int | None = None) -> pd.Series:
    rows = accuracy[accuracy["family"] == family]
    if rnd is not None:
        rows = rows[rows["round"] == rnd]
    return rows.set_index("seed")["accuracy"].sort_index()


def _compare(claim: str, thesis: str, a: pd.Series, b: pd.Series, names: tuple[str, str], n_test: int):
    """Claim that ``a`` beats ``b`` (per-seed accuracies): effect = mean(a - b)."""
    diff = (a - b).dropna()
    if diff.empty:
        return unmeasurable(claim, thesis, "no networks to compare", "missing runs")
    pa, pb = a[diff.index].mean(), b[diff.index].mean()
    margin, basis = _accuracy_margin(diff, pa, pb, n_test)
    return judge(claim, thesis, f"{names[0]} {pa:.3f}, {names[1]} {pb:.3f} (mean of {len(diff)} seed(s))",
                 diff.mean(), margin, basis)


def chapter6(accuracy: pd.DataFrame, density: pd.DataFrame, collapse: pd.DataFrame, reference_collapse: int | None,
             num_layers: int, n_test: int) -> pd.DataFrame:
    """The claims table; ``reference_collapse``: the dense network's layer of collapse (the cut's),
    ``num_layers``: probe layers of the network (weight layers = ``num_layers``)."""
    last = int(accuracy.loc[accuracy["family"] == "ticket", "round"].max())
    seeds = sorted(accuracy["seed"].unique())
    rows = []

    # 1. where IMP prunes, against the layer of collapse
    claim = "IMP thins the hidden layers after the layer of collapse more than those before it"
    thesis = "5.5.1 (pruning is often harder in later layers); 5.5.2 conjectures the ticket keeps the full depth"
    if reference_collapse is None or not 1 < reference_collapse < num_layers - 1:
        rows.append(unmeasurable(claim, thesis, f"layer of collapse {reference_collapse}",
                                 "needs hidden layers on both sides of the layer of collapse"))
    else:
        before = [l for l in range(1, num_layers - 1) if l < reference_collapse]
        after = [l for l in range(1, num_layers - 1) if l >= reference_collapse]
        final = density[(density["family"] == "ticket") & (density["round"] == last)]
        per_seed = final.groupby("seed").apply(
            lambda g: g[g.layer.isin(before)].density.mean() - g[g.layer.isin(after)].density.mean())
        by_layer = final.groupby("layer")["density"].mean()
        text = (f"round {last}, density per weight layer 0-{num_layers - 1}: "
                + ", ".join(f"{d:.2f}" for d in by_layer) + f"; hidden layers {before[0]}-{before[-1]} vs "
                f"{after[0]}-{after[-1]} (collapse at {reference_collapse})")
        spread = _spread(per_seed.tolist())
        if math.isnan(spread):
            rows.append(unmeasurable(claim, thesis, text, "one seed: no spread to compare the difference with"))
        else:
            rows.append(judge(claim, thesis, text, per_seed.mean(), spread, f"range over {len(seeds)} seeds"))

    # 2. the ticket's layers after the collapse still do work
    rows.append(_compare("The ticket needs its layers after the layer of collapse (cut there, it loses accuracy)",
                         "5.5.2: a winning ticket would span the full depth",
                         _acc(accuracy, "ticket", last), _acc(accuracy, "ticket cut", last),
                         (f"ticket (round {last})", f"cut at layer {reference_collapse}"), n_test))

    # 3. tickets still collapse
    claim = "The retrained tickets still collapse (last layer's relative within-class trace below 0.2)"
    final = collapse[(collapse["family"] == "ticket") & (collapse["round"] == last)]
    values = final["last_rel_trace"]
    text = f"round {last}: " + ", ".join(f"seed {s}: {v:.3f}" for s, v in zip(final["seed"], values))
    spread = _spread(values.tolist())
    if math.isnan(spread):
        rows.append(unmeasurable(claim, "4.1.1 (dense networks); not measured for tickets", text,
                                 "one seed: no spread to compare with"))
    else:
        rows.append(judge(claim, "4.1.1 (dense networks); not measured for tickets", text,
                          COLLAPSE_THRESHOLD - values.max(), spread, f"range over {len(values)} seeds"))

    # 4. pruning moves the layer of collapse
    claim = "Pruning moves the layer of collapse later (ticket vs the dense network on the same schedule)"
    dense = collapse[(collapse["family"] == "ticket") & (collapse["round"] == 0)].set_index("seed")["collapse_layer"]
    ticket = final.set_index("seed")["collapse_layer"]
    dense, ticket = dense.fillna(num_layers).astype(float), ticket.fillna(num_layers).astype(float)
    text = (f"layer of collapse, round 0: {', '.join(str(int(v)) for v in dense)}; round {last}: "
            f"{', '.join(str(int(v)) for v in ticket)} (never = {num_layers})")
    spread = max(_spread(dense.tolist()), _spread(ticket.tolist())) if len(seeds) > 1 else math.nan
    if math.isnan(spread):
        rows.append(unmeasurable(claim, "5.5.2 (question)", text, "one seed: no spread to compare with"))
    else:
        rows.append(judge(claim, "5.5.2 (question)", text, (ticket - dense).mean(), spread,
                          f"largest range over {len(seeds)} seeds"))

    # 5-6. the lottery ticket hypothesis itself
    rows.append(_compare("The ticket beats a random mask of the same per-layer densities",
                         "1.3.1 (Frankle and Carbin 2019)", _acc(accuracy, "ticket", last),
                         _acc(accuracy, "random", last), (f"ticket (round {last})", "random"), n_test))
    rows.append(_compare("The ticket is at least as accurate as the dense network retrained on the same schedule",
                         "1.3.1: a ticket matches the dense network", _acc(accuracy, "ticket", last),
                         _acc(accuracy, "ticket", 0), (f"ticket (round {last})", "dense (round 0)"), n_test))

    # 7. the thesis's question: ticket against the network cut at the collapse layer
    claim = "At no more parameters, the ticket is more accurate than the network cut at the layer of collapse"
    cut = accuracy[accuracy["family"] == "cut"]
    tickets = accuracy[(accuracy["family"] == "ticket") & (accuracy["round"] > 0)]
    if cut.empty or tickets.empty:
        rows.append(unmeasurable(claim, "5.5.2 (question)", "no cut network or no ticket", "missing runs"))
    else:
        budget = cut["params"].max()
        small = tickets.groupby("round")["params"].max()
        rnd = int(small[small <= budget].index.min()) if (small <= budget).any() else last
        row = _compare(claim, "5.5.2 (question)", _acc(accuracy, "ticket", rnd), _acc(accuracy, "cut"),
                       (f"ticket round {rnd} ({small[rnd]:,.0f} parameters)",
                        f"cut ({budget:,.0f} parameters)"), n_test)
        rows.append(row)

    # 8. depth after the collapse for training
    rows.append(_compare("The depth after the layer of collapse is needed for training (the full network beats "
                         "one as deep as the layer of collapse trained from scratch)",
                         "5.5.2 conjecture (benefit of the full depth)", _acc(accuracy, "dense"),
                         _acc(accuracy, "shallow"), ("full", f"depth {reference_collapse} from scratch"), n_test))
    return table(rows)

"""Chapter 6's claim rules on known-truth tables: clearly true -> yes, clearly false -> no, noise -> not yes."""
import pandas as pd
import pytest

from inc_utils.claims import NO, NOT_MEASURABLE, YES, chapter6

LAYERS, COLLAPSE, N = 9, 4, 10_000


def _tables(ticket=0.85, random=0.75, dense=0.82, cut=0.80, ticket_cut=0.70, shallow=0.80, after=0.02, before=0.2,
            trace=0.05, moved=2, seeds=(0, 1), jitter=0.001):
    acc, dens, col = [], [], []
    for i, s in enumerate(seeds):
        j = i * jitter
        acc += [(s, "dense", -1, dense + j, 600_000), (s, "cut", -1, cut + j, 300_000),
                (s, "shallow", -1, shallow + j, 300_000), (s, "ticket", 0, dense + j, 600_000),
                (s, "ticket", 2, ticket + j, 50_000), (s, "random", 2, random + j, 50_000),
                (s, "ticket cut", 2, ticket_cut + j, 20_000)]
        dens += [(s, 2, "ticket", l, 0.5 if l in (0, LAYERS - 1) else before if l < COLLAPSE else after + j)
                 for l in range(LAYERS)]
        col += [(s, "ticket", 0, COLLAPSE, 0.05), (s, "ticket", 2, COLLAPSE + moved, trace + j / 10)]
    return (pd.DataFrame(acc, columns=["seed", "family", "round", "accuracy", "params"]),
            pd.DataFrame(dens, columns=["seed", "round", "family", "layer", "density"]),
            pd.DataFrame(col, columns=["seed", "family", "round", "collapse_layer", "last_rel_trace"]))


def _holds(**kw):
    return chapter6(*_tables(**kw), COLLAPSE, LAYERS, N).set_index("claim")["holds"].tolist()


def test_clearly_true_tables_give_yes_everywhere():
    assert _holds() == [YES] * 8


def test_clearly_false_tables_give_no_everywhere():
    got = _holds(ticket=0.70, random=0.80, ticket_cut=0.80, cut=0.90, shallow=0.95, after=0.5, before=0.1,
                 trace=0.6, moved=-2)
    assert got == [NO] * 8


def test_differences_within_noise_are_never_yes():
    got = _holds(ticket=0.85, random=0.849, dense=0.851, ticket_cut=0.851, cut=0.851, shallow=0.851,
                 after=0.2, before=0.2, trace=0.2, moved=0, jitter=0.001)
    assert YES not in got and got.count(NOT_MEASURABLE) >= 6


def test_one_seed_makes_spread_claims_unmeasurable_and_keeps_binomial_ones():
    table = chapter6(*_tables(seeds=(0,)), COLLAPSE, LAYERS, N)
    holds = table.set_index("claim")["holds"]
    assert (holds.iloc[[0, 2, 3]] == NOT_MEASURABLE).all()
    assert (holds.iloc[[1, 4, 6, 7]] == YES).all()
    assert table["margin"].iloc[4] == pytest.approx(2 * ((0.85 * 0.15 + 0.75 * 0.25) / N) ** 0.5)

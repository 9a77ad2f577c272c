"""Chapter 1's rules (thesis 4.1) on hand-made runs whose truth is known: true -> yes, false -> no,
within noise -> not yes."""
import importlib
import math

import numpy as np
import pandas as pd
import pytest

from inc_utils import claims as K
from inc_utils import metrics as M
C1 = importlib.import_module("inc_utils.claims.chapter1")

C = 10
COLLAPSED = [0.6, 0.5, 0.3, 0.1, 0.05, 0.03]      # rel trace per layer 0-5: collapse at layer 3


def _metrics(rel_by_epoch: dict[int, list[float]], *, ncc=1.0, ncc_test=0.9, net_test=0.9, agree=0.99,
             avcos=0.95, nc2=None) -> pd.DataFrame:
    """A measure table: ``nc2`` maps epoch -> value of all three NC2 measures (default: falls as 1/epoch)."""
    rows = []
    for epoch, rel in rel_by_epoch.items():
        for layer, r in enumerate(rel):
            for split in ("train", "test"):
                values = {M.REL_TRACE_W: r, M.NC1: 10 * r / epoch, M.NCC_ACC: ncc if split == "train" else ncc_test,
                          M.NCC_AGREE: agree, M.NC3_AVCOS: avcos}
                values.update({m: (nc2 or {}).get(epoch, 1 / epoch) for m in C1.NC2_MEASURES})
                rows += [(epoch, split, layer, m, v) for m, v in values.items()]
        rows += [(epoch, s, -1, M.NET_ACC, a) for s, a in (("train", 1.0), ("test", net_test))]
    return pd.DataFrame(rows, columns=["epoch", "split", "layer", "measure", "value"])


def _spectra(epoch: int, layers: int, sv: np.ndarray) -> pd.DataFrame:
    sv = np.sort(np.asarray(sv, float))[::-1]
    return pd.DataFrame([(epoch, layer, i + 1, v / sv.sum()) for layer in range(layers) for i, v in enumerate(sv[:30])],
                        columns=["epoch", "layer", "index", "sv_rel"])


def _shapes(layers: int, width: int = 64) -> dict:
    return {layer: (width if layer < layers - 1 else C, width) for layer in range(layers)}


def _gap_at(k: int, n: int = 64, seed: int = 0) -> np.ndarray:
    """k singular values near 1 (a 1% spread), the rest near 1e-3: a sharp gap after σ_k."""
    rng = np.random.default_rng(seed)
    return np.r_[1 + 0.01 * rng.random(k), 1e-3 * (1 + 0.01 * rng.random(n - k))]


def _table(metrics, sv, layers=6, **kw):
    last = max(metrics.epoch)
    return K.chapter1(metrics, _spectra(last, layers, sv), _shapes(layers), n_train=5000, n_test=10000, **kw)


def _row(table, start: str) -> pd.Series:
    rows = table[table.claim.str.startswith(start)]
    assert len(rows) == 1, (start, table.claim.tolist())
    return rows.iloc[0]


def test_a_collapsed_run_holds_every_claim():
    metrics = _metrics({10: COLLAPSED, 50: COLLAPSED, 100: COLLAPSED})
    table = _table(metrics, _gap_at(C - 1))
    assert list(table.columns) == list(K.COLUMNS)
    assert (table.holds == K.YES).all(), table[["claim", "this_run", "effect", "margin", "holds"]].to_string()
    assert "collapse at layer 3 of 0-5" in _row(table, "A layer of collapse").this_run
    assert np.isfinite(table.effect).all() and (table.margin >= 0).all()


def test_label_prefixes_every_claim():
    table = _table(_metrics({10: COLLAPSED, 100: COLLAPSED}), _gap_at(C), label="MLP-8 on digits")
    assert table.claim.str.startswith("MLP-8 on digits: ").all()


def test_false_claims_are_no():
    rising = list(reversed(COLLAPSED))             # rel trace rises with depth: nothing collapses
    metrics = _metrics({10: rising, 100: rising}, nc2={10: 0.01, 100: 0.1})
    table = _table(metrics, _gap_at(C))
    assert _row(table, "The relative within-class trace falls").holds == K.NO
    assert _row(table, "A layer of collapse exists").holds == K.NO
    assert _row(table, "From the collapse layer on, the nearest").holds == K.NOT_MEASURABLE  # no collapse
    # NCC clearly below 0.99 and far from the network's test accuracy; AvCos at a random subspace's level
    table = _table(_metrics({10: COLLAPSED, 100: COLLAPSED}, ncc=0.95, ncc_test=0.8, avcos=0.2,
                            nc2={10: 0.01, 100: 0.1}), _gap_at(C))
    assert _row(table, "From the collapse layer on, the nearest").holds == K.NO
    assert _row(table, "From the collapse layer on, NCC test").holds == K.NO
    assert _row(table, "NC2 converges").holds == K.NO              # NC2 rose tenfold
    assert _row(table, "From the collapse layer on, the weights' top-C").holds == K.NO
    assert _row(table, "After collapse the weights' spectral gap").holds == K.NO   # gap at C, not C−1
    flat = np.ones(64)                                                  # no structure in the spectrum
    assert _row(_table(_metrics({10: COLLAPSED, 100: COLLAPSED}), flat), "From the collapse layer on, the top C singular").holds == K.NO


def test_nc1_falls_with_one_bump_is_a_fall():
    # the smoke case of issue 18: 0.031 -> 4e-5 with one bump on the way
    metrics = _metrics({e: COLLAPSED for e in (10, 25, 50, 100, 200)})
    nc1 = {10: 0.031, 25: 0.004, 50: 0.009, 100: 1e-4, 200: 4e-5}
    metrics.loc[(metrics.measure == M.NC1) & (metrics.layer == 5), "value"] = metrics.epoch.map(nc1)
    row = _row(_table(metrics, _gap_at(C - 1)), "NC1 of the last layer")
    assert row.holds == K.YES and row.effect == pytest.approx(math.log10(0.031 / 4e-5))
    assert row.margin == pytest.approx(math.log10(0.009 / 0.004))


def test_within_noise_is_not_yes():
    # NC1 and NC2 wander around one level: the fall is no larger than the bumps
    metrics = _metrics({e: COLLAPSED for e in (10, 25, 50, 100)}, nc2={10: 0.1, 25: 0.12, 50: 0.09, 100: 0.095})
    nc1 = {10: 0.1, 25: 0.12, 50: 0.09, 100: 0.098}
    metrics.loc[(metrics.measure == M.NC1) & (metrics.layer == 5), "value"] = metrics.epoch.map(nc1)
    # gaps after C−1 and after C of the same size: where the gap sits is not measurable
    sv = np.r_[np.ones(C - 1), 0.1, 0.01 * np.ones(54)]
    table = _table(metrics, sv)
    for start in ("NC1 of the last layer", "NC2 converges", "After collapse the weights' spectral gap"):
        assert _row(table, start).holds != K.YES, start
    # NCC train accuracy a hair under 0.99: within the binomial error of 5,000 images
    table = _table(_metrics({10: COLLAPSED, 100: COLLAPSED}, ncc=0.989), _gap_at(C))
    assert _row(table, "From the collapse layer on, the nearest").holds == K.NOT_MEASURABLE
    # relative trace at the threshold in the last two layers, moving by more than its distance to it
    table = _table(_metrics({10: [0.6, 0.5, 0.4, 0.3, 0.21, 0.21], 100: [0.6, 0.5, 0.4, 0.3, 0.19, 0.19]}), _gap_at(C))
    assert _row(table, "A layer of collapse exists").holds == K.NOT_MEASURABLE


def test_spectral_gap_and_its_position():
    assert C1.spectral_gap(_gap_at(9)[:21]) == 9 and C1.spectral_gap(_gap_at(10)[:21]) == 10
    effect, noise = C1.gap_position(_gap_at(9), C)
    assert effect > 2 * noise > 0                      # a drop of ~3 decades after σ_9, none after σ_10
    effect, _ = C1.gap_position(_gap_at(10), C)
    assert effect < -2


def test_random_baselines_match_known_values():
    mean, sd = C1.random_avcos(256, 10, 9)
    assert 0.1 < mean < 0.35 and sd < 0.05             # random 10-dim subspaces of R^256: far from 1
    assert C1.random_avcos(10, 10, 9)[0] == pytest.approx(1.0)   # the whole space: every angle 0
    share, sd = C1.random_top_share((256, 256), 10)
    assert 0.05 < share < 0.15 and sd < 0.01           # quarter-circle law: the top 10 of 256 hold ~9%


def test_fall_over_checkpoints():
    assert C1.fall_over_checkpoints([1, 0.1, 0.01]) == pytest.approx((2.0, 0.0))
    assert C1.fall_over_checkpoints([1, 0.1, 0.5]) == pytest.approx((math.log10(2), math.log10(5)))  # a bump up
    assert C1.fall_over_checkpoints([0.01, 0.1, 0.05, 1]) == pytest.approx((-2.0, math.log10(2)))  # a dip in a rise
    assert all(math.isnan(v) for v in C1.fall_over_checkpoints([0.5]))


def _experiment(dataset, arch, rel, avcos, depth=8):
    return {"dataset": dataset, "arch": arch, "depth": depth,
            "metrics": _metrics({10: rel, 50: rel, 100: rel}, avcos=avcos)}


def test_across_experiments():
    early = [0.6, 0.1, 0.05, 0.03, 0.02, 0.01]         # collapse at layer 1
    late = [0.6, 0.5, 0.4, 0.3, 0.1, 0.05]             # collapse at layer 4
    rows = lambda e: K.across_experiments(e).set_index("claim").holds
    # digits collapses at 1, fashion at 4, steady over checkpoints: yes; reversed: no; equal: not measurable
    assert rows({"a": _experiment("digits", "mlp", early, 0.9), "b": _experiment("fashion_mnist", "mlp", late, 0.9)}).tolist() == [K.YES]
    assert rows({"a": _experiment("digits", "mlp", late, 0.9), "b": _experiment("fashion_mnist", "mlp", early, 0.9)}).tolist() == [K.NO]
    assert rows({"a": _experiment("digits", "mlp", late, 0.9), "b": _experiment("fashion_mnist", "mlp", late, 0.9)}).tolist() == [K.NOT_MEASURABLE]
    # one layer apart is within a collapse layer's seed-to-seed resolution, however steady the runs
    one_later = [0.6, 0.3, 0.1, 0.05, 0.03, 0.02]      # collapse at layer 2
    assert rows({"a": _experiment("digits", "mlp", early, 0.9), "b": _experiment("fashion_mnist", "mlp", one_later, 0.9)}).tolist() == [K.NOT_MEASURABLE]
    # another architecture is not compared across datasets
    assert len(K.across_experiments({"a": _experiment("digits", "mlp", early, 0.9),
                                     "b": _experiment("fashion_mnist", "convnet", late, 0.9)})) == 0


def test_mlp_against_convnet():
    def pair(mlp_avcos, conv_avcos):
        mlp, conv = _experiment("digits", "mlp", COLLAPSED, 0.9), _experiment("digits", "convnet", COLLAPSED, 0.5)
        for e, v in ((mlp, mlp_avcos), (conv, conv_avcos)):
            last = e["metrics"].epoch.max()
            sel = (e["metrics"].measure == M.NC3_AVCOS) & (e["metrics"].epoch == last) & (e["metrics"].split == "train")
            e["metrics"].loc[sel, "value"] = e["metrics"].loc[sel, "layer"].map(dict(enumerate(v)))
        return K.across_experiments({"MLP": mlp, "ConvNet": conv}).holds.tolist()
    assert pair([0.9] * 3 + [0.95, 0.96, 0.97], [0.1] * 3 + [0.6, 0.65, 0.7]) == [K.YES]
    assert pair([0.1] * 3 + [0.6, 0.65, 0.7], [0.1] * 3 + [0.95, 0.96, 0.97]) == [K.NO]
    assert pair([0.1] * 3 + [0.7, 0.9, 0.8], [0.1] * 3 + [0.8, 0.7, 0.9]) == [K.NOT_MEASURABLE]

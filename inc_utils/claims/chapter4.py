"""Chapter 4's claims (thesis 4.4, appendix C.2.3-C.2.4): PCA, ℓ1 sparsity of principal directions,
neuron sparsity and activation magnitudes.

Every row is ``judge(effect, margin)``: component counts against a bootstrap over the training points
(with the change depth alone gives subtracted), ℓ1 corresponding dimensionality against random
orthonormal bases, neuron shares against binomial errors, per-neuron spreads against their
sampling error.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import spectra as SP
from .core import Z, difference_se, fmt, judge, table, unmeasurable

#: Thesis Fig 4.4.3: before the collapse the neurons' sparsity lies "tightly around approximately 0.6".
THESIS_SPARSITY = 0.6

#: How far the mean sparsity may sit from 0.6 and still read as "around 0.6": Fig 4.4.3's
#: pre-collapse curves stay within about 0.5-0.7.
SPARSITY_BAND = 0.1

#: Random orthonormal bases drawn for the ℓ1 baseline of a mean over many directions.
BASIS_DRAWS = 50

_CLAIMS = {
    "pca": ("From the collapse layer on, the data occupy a much smaller space than depth alone gives",
            "4.4.1, Fig 4.4.1b: no distinct regimes in layers 1-3, 'a clear shift in layer 4 and deeper'"),
    "bias": ("Before the collapse, the leading direction of the data (uncentred SVD) is flatter than a random "
             "direction: the global mean acts as a bias",
             "4.4.2 and 3.5.1 footnote 3: the first singular vector has a higher ℓ1 norm than a random vector"),
    "aligned": ("Principal directions align with neurons more after the collapse than before (mean corresponding "
                "dimensionality over all components, below the random baseline)",
                "4.4.2, Fig 4.4.2: ~d for all but the last components before; plateaus well below d in the tail "
                "after (layer 6: ~700 and ~120 of 1024)"),
    "spread": ("Neuron sparsity spreads out after the collapse (larger spread across neurons)",
               "4.4.3, Fig 4.4.3: tightly around 0.6 before; extremely sparse and non-sparse neurons after"),
    "extreme": ("After the collapse there are dead (always 0) and always-on neurons; before it hardly any",
                "4.4.3, Fig 4.4.3: 'patterns of extreme sparsity and extreme non-sparsity'"),
    "tight": (f"Before the collapse, neuron sparsity sits around {THESIS_SPARSITY}",
              "4.4.3, Fig 4.4.3: 'distributed continuously and tightly around approximately 0.6'"),
    "steps": ("After the collapse, neuron sparsity comes in steps of 1/C",
              "C.2.4: step-wise sparsity at the 1/10 marks in layers 6-10"),
    "shift": ("Before the collapse, the non-zero activations shrink from layer to layer",
              "4.4.4, Fig 4.4.4: they 'shift downwards by about half an order of magnitude per layer'"),
}


def _collapse_split(layers, collapse):
    """(layers before, layers from the collapse on), or None when either side is empty."""
    before = [l for l in layers if l < collapse]
    after = [l for l in layers if l >= collapse]
    return (before, after) if before and after else None


def pca_shift(components: dict[int, int], draws: dict[int, np.ndarray], collapse: int,
              num_classes: int = 10) -> tuple[float, float, str, bool]:
    """(effect, noise sd, text, floored) of the drop in the number of components at the collapse, in decades:
    the mean log10 count from the collapse layer on, below what depth alone predicts for it. Depth
    alone continues the last count before the collapse at the mean per-layer change before it (0
    with one layer before), but not below C−1 components: C class means span C−1 directions, so a
    prediction under that is no prediction. ``floored`` says the trend alone reaches that floor; then
    no drop can be shown, only a space that grows (the caller keeps the effect at or below 0). The
    sd is that of the same quantity over bootstrap counts."""
    layers = sorted(components)
    before, after = _collapse_split(layers, collapse)
    floor = math.log10(max(num_classes - 1, 1))

    def shift(count):
        log = {l: math.log10(max(count[l], 1)) for l in layers}
        steps = [log[a] - log[b] for a, b in zip(before[:-1], before[1:])]
        drift = float(np.mean(steps)) if steps else 0.0
        distance = float(np.mean(after)) - before[-1]
        predicted = max(log[before[-1]] - drift * distance, floor)
        observed = float(np.mean([log[l] for l in after]))
        return predicted - observed, log[before[-1]] - observed, drift, predicted == floor

    effect, drop, drift, floored = shift(components)
    n = min(len(v) for v in draws.values())
    noise = float(np.std([shift({l: draws[l][i] for l in layers})[0] for i in range(n)], ddof=1))
    text = (f"components per layer {layers[0]}-{layers[-1]}: {', '.join(str(int(components[l])) for l in layers)}; "
            f"layer {before[-1]} to the mean from layer {collapse} on: {10 ** drop:.1f}x fewer; depth alone "
            f"{10 ** drift:.2f}x per layer" + ("" if len(before) > 1 else " (one layer before the collapse: taken as 1)"))
    return effect, noise, text, floored


def chapter4(components: dict[int, int], component_draws: dict[int, np.ndarray], spectrum: pd.DataFrame,
             leading: pd.DataFrame, neurons: pd.DataFrame, collapse: int | None, num_classes: int = 10) -> pd.DataFrame:
    """Thesis 4.4 on one run, hidden layers only.

    components: {layer: components leaving < 1% of the variance}; component_draws: {layer: bootstrap
    counts} (``spectra.components_bootstrap``); spectrum: ``spectra.spectrum_table`` (all components);
    leading: ``spectra.leading_direction_table``; neurons: ``spectra.neuron_table``."""
    layers = sorted(components)
    split = None if collapse is None else _collapse_split(layers, collapse)
    if split is None:
        why = "no layer of collapse with hidden layers on both sides"
        return table([unmeasurable(claim, thesis, "-", why) for claim, thesis in _CLAIMS.values()])
    before, after = split
    rows = []

    effect, noise, text, floored = pca_shift(components, component_draws, collapse, num_classes)
    rows.append(judge(*_CLAIMS["pca"], text, min(effect, 0.0) if floored else effect, Z * noise,
                      f"{Z:g} SDs of the same drop over {len(next(iter(component_draws.values())))} bootstrap "
                      f"resamples of the training points (decades)"
                      + (f"; depth alone already predicts C−1 = {num_classes - 1} components after the collapse, "
                         "so only a growing space can be shown (effect kept ≤ 0)" if floored else "")))

    # ℓ1: the leading uncentred direction against one random direction over the layer's live neurons
    lead = leading.set_index("layer")
    baseline = {int(d): SP.random_direction_dimensionality(int(d)) for d in lead["live"].unique()}
    random_dim = {l: baseline[int(lead.loc[l, "live"])] for l in before}
    excess = pd.Series({l: lead.loc[l, "leading_dim"] - random_dim[l][0] for l in before})
    worst = excess.idxmin()
    rows.append(judge(*_CLAIMS["bias"],
                      "corresponding dimensionality of the leading direction in layers "
                      f"{before[0]}-{before[-1]}: {fmt(lead.loc[before, 'leading_dim'], 0)} (random over the "
                      f"{', '.join(str(int(lead.loc[l, 'live'])) for l in before)} live neurons: "
                      f"{fmt([random_dim[l][0] for l in before], 1)}); cosine with the mean "
                      f"{fmt(lead.loc[before, 'cosine_with_mean'])}",
                      excess.loc[worst], Z * random_dim[worst][1],
                      f"{Z:g} SDs of one random unit direction's dimensionality over the live neurons (exact), "
                      f"least layer ({worst})"))

    # ℓ1 over all components against random orthonormal bases of the same width
    mean_dim = spectrum.groupby("layer")["corresponding_dim"].mean()
    width = spectrum.groupby("layer")["component"].size()
    basis = {int(d): SP.random_basis_dimensionality(int(d), int(d), BASIS_DRAWS) for d in width.unique()}
    single = {int(d): SP.random_direction_dimensionality(int(d)) for d in width.unique()}
    deficit = pd.Series({l: basis[int(width[l])][0] - mean_dim[l] for l in layers})
    low = spectrum.assign(low=lambda s: s.corresponding_dim < s.layer.map(
        lambda l: single[int(width[l])][0] - Z * single[int(width[l])][1])).groupby("layer")["low"].mean()
    text = (f"mean over all components per layer {layers[0]}-{layers[-1]}: {fmt(mean_dim, 0)} (random: "
            f"{fmt([basis[int(width[l])][0] for l in layers], 1)}); share of components below the random band: "
            f"{fmt(low)}")
    sd = max(basis[int(width[l])][1] for l in layers)
    rows.append(judge(*_CLAIMS["aligned"], text + f"; mean drop below it before: {deficit.loc[before].mean():.1f}, "
                      f"after: {deficit.loc[after].mean():.1f} dimensions",
                      deficit.loc[after].mean() - deficit.loc[before].mean(), Z * sd * math.sqrt(2),
                      f"{Z:g} SDs of a difference of two means over random orthonormal bases ({BASIS_DRAWS} draws)"))

    # neuron sparsity
    by_layer = neurons.groupby("layer")["sparsity"]
    spread, count = by_layer.std(), by_layer.size()
    spread_se = spread / np.sqrt(2 * (count - 1))                   # sampling error of a standard deviation
    mean_se = lambda ls: math.sqrt((spread_se.loc[ls] ** 2).sum()) / len(ls)
    rows.append(judge(*_CLAIMS["spread"],
                      f"std of neuron sparsity per layer {layers[0]}-{layers[-1]}: {fmt(spread.loc[layers], 3)}",
                      spread.loc[after].mean() - spread.loc[before].mean(),
                      Z * math.hypot(mean_se(before), mean_se(after)), f"{Z:g} SEs of the difference of mean stds"))

    dead = neurons.assign(dead=neurons.sparsity == 1, on=neurons.sparsity == 0)
    counts = dead.groupby("layer")[["dead", "on"]].sum()
    extreme = lambda ls: float(counts.loc[ls].to_numpy().sum() / count.loc[ls].sum())
    rows.append(judge(*_CLAIMS["extreme"],
                      "dead / always-on neurons per layer: " + ", ".join(
                          f"{l}: {int(counts.loc[l, 'dead'])}/{int(counts.loc[l, 'on'])}" for l in layers),
                      extreme(after) - extreme(before),
                      Z * difference_se(extreme(after), int(count.loc[after].sum()), extreme(before),
                                        int(count.loc[before].sum())),
                      f"{Z:g} binomial SEs of the difference of shares of neurons"))

    pre = neurons[neurons.layer.isin(before)]["sparsity"]
    rows.append(judge(*_CLAIMS["tight"],
                      f"mean ± std of neuron sparsity in layers {before[0]}-{before[-1]}: "
                      + ", ".join(f"{by_layer.mean()[l]:.2f} ± {spread[l]:.2f}" for l in before),
                      SPARSITY_BAND - abs(pre.mean() - THESIS_SPARSITY), Z * pre.std() / math.sqrt(len(pre)),
                      f"{Z:g} SEs of the mean over neurons; band ±{SPARSITY_BAND:g} around {THESIS_SPARSITY:g}"))

    post = neurons[neurons.layer.isin(after) & (neurons.sparsity > 0) & (neurons.sparsity < 1)]["sparsity"]
    uniform_mean, uniform_sd = 1 / (4 * num_classes), 1 / (2 * num_classes * math.sqrt(12))
    if len(post) == 0:
        rows.append(unmeasurable(*_CLAIMS["steps"], "every neuron after the collapse is dead or always on",
                                 "no neuron with a sparsity strictly between 0 and 1"))
    else:
        distance = SP.step_distance(post.to_numpy(), num_classes)
        rows.append(judge(*_CLAIMS["steps"],
                          f"mean distance of {len(post)} neurons' sparsity (0 < s < 1) to the nearest k/{num_classes}: "
                          f"{distance.mean():.4f} (uniform: {uniform_mean:.4f})",
                          uniform_mean - distance.mean(), Z * uniform_sd / math.sqrt(len(post)),
                          f"{Z:g} SEs of the mean distance of uniformly spread sparsities"))

    magnitude = neurons[neurons.layer.isin(before) & (neurons["mean"] > 0)]
    if len(before) < 2:
        rows.append(unmeasurable(*_CLAIMS["shift"], f"one hidden layer ({before[0]}) before the collapse",
                                 "a per-layer shift needs two layers before the collapse"))
    else:
        x, y = magnitude.layer.to_numpy(float), np.log10(magnitude["mean"].to_numpy(float))
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        slope_se = math.sqrt((residual ** 2).sum() / (len(x) - 2) / ((x - x.mean()) ** 2).sum())
        medians = magnitude.groupby("layer")["mean"].median()
        rows.append(judge(*_CLAIMS["shift"],
                          f"median non-zero mean per layer {before[0]}-{before[-1]}: {fmt(medians, 3)}; "
                          f"fitted change {slope:+.2f} decades per layer",
                          -slope, Z * slope_se, f"{Z:g} SEs of the least-squares slope over neurons (decades)"))
    return table(rows)

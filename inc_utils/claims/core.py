"""The shape of every claims table and the one rule that turns numbers into a verdict.

A row states a claim of the thesis, what the thesis reports, what this run measured, and two
numbers a reader can check by hand:

* ``effect``: the measured quantity the claim is about, signed so that a positive value is the
  direction the thesis claims (e.g. test-accuracy gap, change of a rank correlation, drop of a
  dimensionality below its random baseline);
* ``margin`` (>= 0): what noise or chance alone would give for that quantity, with ``basis``
  saying what it is (``Z`` binomial standard errors, the spread between seeds, a random or
  shuffled baseline, a bootstrap interval).

The verdict is then always the same rule (``decide``): **yes** when effect > margin, **no** when
effect < −margin, otherwise **not measurable at this scale** (the run cannot tell the claim from
its opposite). A design that cannot measure a claim at all (no layer of collapse, one seed) gives
``unmeasurable`` with the reason in ``basis``.
"""
from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

YES, NO, NOT_MEASURABLE = "yes", "no", "not measurable at this scale"
COLUMNS = ("claim", "thesis", "this_run", "effect", "margin", "basis", "holds")

#: Standard errors a difference must exceed before it counts (about a 95% two-sided level).
Z = 2.0


@dataclass(frozen=True)
class Claim:
    """One row of a claims table; build it with ``judge`` or ``unmeasurable``."""
    claim: str
    thesis: str
    this_run: str
    effect: float
    margin: float
    basis: str
    holds: str


def decide(effect: float, margin: float) -> str:
    """YES if ``effect > margin``, NO if ``effect < -margin``, else NOT_MEASURABLE (also for NaN)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not (math.isfinite(effect) and math.isfinite(margin)):
        return NOT_MEASURABLE
    return YES if effect > margin else NO if effect < -margin else NOT_MEASURABLE


def judge(claim: str, thesis: str, this_run: str, effect: float, margin: float, basis: str) -> Claim:
    """A row whose verdict is ``decide(effect, margin)``."""
    effect, margin = float(effect), float(margin)
    return Claim(claim, thesis, this_run, effect, margin, basis, decide(effect, margin))


def unmeasurable(claim: str, thesis: str, this_run: str, reason: str) -> Claim:
    """A row the design cannot judge (no layer of collapse, a single seed, ...); ``reason`` says why."""
    return Claim(claim, thesis, this_run, math.nan, math.nan, reason, NOT_MEASURABLE)


def table(claims: list[Claim]) -> pd.DataFrame:
    """The claims as a DataFrame with ``COLUMNS``."""
    assert [f.name for f in fields(Claim)] == list(COLUMNS)
    return pd.DataFrame([astuple(c) for c in claims], columns=list(COLUMNS))


def save(claims: pd.DataFrame, chapter: str, folder: str | Path) -> Path:
    """Write ``<folder>/<chapter>.csv``; ``make reproduce`` gathers these into ``build/<scale>/claims.csv``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.csv"
    claims.to_csv(path, index=False)
    return path


def number(x: float) -> str:
    """A number as printed in the tables: 3 significant digits, '-' for NaN."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def to_markdown(claims: pd.DataFrame) -> str:
    """The claims as a Markdown table: claim | thesis | this run | effect | margin (basis) | **holds**."""
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| claim | thesis | this run | effect | margin | holds |", "|---|---|---|---|---|---|"]
    for r in claims.itertuples(index=False):
        margin = f"{number(r.margin)} ({r.basis})" if r.basis else number(r.margin)
        lines.append("| " + " | ".join([cell(r.claim), cell(r.thesis), cell(r.this_run), number(r.effect),
                                        cell(margin), f"**{r.holds}**"]) + " |")
    return "\n".join(lines)


def gather(build_dir: str | Path) -> pd.DataFrame:
    """Every chapter's claims under ``<build_dir>/claims/*.csv`` as one table with a leading ``chapter`` column."""
    files = sorted(Path(build_dir, "claims").glob("*.csv"))
    frames = [pd.read_csv(f, keep_default_na=True).assign(chapter=f.stem) for f in files]
    columns = ["chapter", *COLUMNS]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


RESULTS_BEGIN, RESULTS_END = "<!-- results:begin -->", "<!-- results:end -->"


def results_section(claims: pd.DataFrame, stamp: dict) -> str:
    """README "Results" text: one claims table per chapter under a line naming scale, commit, date and time.

    ``claims``: ``gather``'s table; ``stamp``: the build's ``build.json`` (scale, commit, date, seconds)."""
    minutes = f", {stamp['seconds'] / 60:.0f} min on {stamp.get('machine', 'this machine')}" if "seconds" in stamp else ""
    counts = claims.holds.value_counts()
    head = (f"*Generated by `inc results --scale {stamp['scale']}` from `build/{stamp['scale']}/claims.csv`: "
            f"commit {stamp.get('commit') or 'unknown'}, {stamp.get('date', 'date unknown')}{minutes}. "
            f"Of {len(claims)} claims, {counts.get(YES, 0)} hold, {counts.get(NO, 0)} do not, and "
            f"{counts.get(NOT_MEASURABLE, 0)} are not measurable at this scale.*")
    parts = [RESULTS_BEGIN, head]
    for chapter, rows in claims.groupby("chapter", sort=True):
        parts += [f"\n**{chapter}**\n", to_markdown(rows)]
    return "\n".join([*parts, RESULTS_END])


def replace_results(readme: str, section: str) -> str:
    """``readme`` with the text between the results markers (inclusive) replaced by ``section``."""
    begin, end = readme.find(RESULTS_BEGIN), readme.find(RESULTS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README has no {RESULTS_BEGIN} ... {RESULTS_END} block")
    return readme[:begin] + section + readme[end + len(RESULTS_END):]


# ---------------------------------------------------------------- noise: what chance alone gives
def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` independent samples."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.nan


def difference_se(p1: float, n1: int, p2: float, n2: int) -> float:
    """Standard error of ``p1 - p2`` for two accuracies on independent samples of sizes n1, n2."""
    return math.hypot(binomial_se(p1, n1), binomial_se(p2, n2))


def spearman(x, y) -> float:
    """Spearman rank correlation; NaN when either side is constant or has < 3 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def bootstrap_spearman(x, y, groups=None, n: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the Spearman correlation of (x, y).

    With ``groups`` (one label per point, e.g. the hyperparameter pair of each run) whole groups
    are resampled, so that seeds of one setting count as one piece of evidence, not several."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    labels = np.arange(len(x)) if groups is None else pd.factorize(pd.Series(list(groups), dtype=object))[0]
    members = [np.flatnonzero(labels == g) for g in range(labels.max() + 1)] if len(x) else []
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))]) if members else []
        draws.append(spearman(x[idx], y[idx]))
    draws = np.asarray(draws)[~np.isnan(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def fmt(values, digits: int = 2) -> str:
    """Numbers joined by ', ' at ``digits`` decimals."""
    return ", ".join(f"{v:.{digits}f}" for v in values)

"""A chapter's key numbers: its results as numbers, checked by the tests within stated tolerances.

A seeded run does not give the same last bits on every CPU: PyTorch picks its kernels by the
instruction set (``ATEN_CPU_CAPABILITY``: default, avx2, avx512) and the thread count, and SGD
carries those bits through hundreds of epochs. So a chapter's checked cells print only what holds
on every CPU (verdicts, layers of collapse, counts, values at two or three digits where they are
stable), and record the numbers behind its results here::

    keynumbers.record(out_dir, "01_intermediate_nc", "measure", **{"MLP-8 rel_trace_w": [0.57, 0.46, ...]})

into ``<out_dir>/numbers/<chapter>.json``. The notebook tests (``tests/notebooks/conftest.py``)
compare a re-executed chapter's file with its reference's (``differences``), each number by its
kind's tolerance (``TOLERANCES``). The tolerances are set from the variation measured across CPU
code paths and thread counts (``benchmarks/cpu_paths.py``; the numbers are in
``tests/notebooks/README.md``) and stay tight enough that a 10% change of a recorded NC measure
fails. Only measures that hold across code paths are recorded: at smoke scale a value of the
scale-free NC1 family (relative within-class trace, NC1, CDNV) moves by up to 15% in one layer,
but a whole list (its geometric mean) by at most 3.4%; the raw traces and the NC2 measures move
by far more, so those are shown but not checked.

A claims table's verdicts are recorded too (``record_verdicts``, kind ``verdict``): a verdict
must stay the same, except where either run put the row's effect within a factor
``VERDICT_NEAR`` of its margin, so close that another CPU's rounding may carry it across.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .runs import atomic_write_text

Number = float | int | None


@dataclass(frozen=True)
class Tolerance:
    """Two numbers agree when ``|a - b| <= absolute + relative * |a|``. In a list (one value per
    layer), values whose magnitude is below ``floor`` times the list's largest, in both lists, are
    not compared: a measure that fell by three orders of magnitude over the layers is rounding
    noise there, not a result. With ``shift``, a list agrees only if also its compared values
    moved together by at most ``shift`` (geometric mean of the ratios): noise moves single layers
    either way, a real change of a measure moves the whole list."""

    relative: float = 0.0
    absolute: float = 0.0
    floor: float = 0.0
    shift: float | None = None   # lists: the geometric mean of the compared ratios b/a within 1 ± shift

    def agree(self, a: Number, b: Number, scale: float = 0.0) -> bool:
        """``a`` (the reference) and ``b`` agree; ``scale``: the largest magnitude of ``a``'s list."""
        if a is None or b is None:
            return a is None and b is None
        if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
            return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        if max(abs(a), abs(b)) < self.floor * scale:
            return True
        return abs(a - b) <= self.absolute + self.relative * abs(a)


#: How much each kind of number may move between CPUs (see the module docstring).
TOLERANCES = {
    # scale-free NC measures: one layer by up to 15% measured, a whole list by up to 3.4%; a whole
    # list changed by 10% fails
    "measure": Tolerance(relative=0.25, floor=1e-3, shift=0.06),
    "accuracy": Tolerance(absolute=0.02),               # fractions of a split
    "share": Tolerance(absolute=0.02),                  # other fractions (e.g. the weights a mask keeps)
    "layer": Tolerance(),                               # layers of collapse: exact
    "count": Tolerance(),                               # counts: exact
}


#: A verdict may change only where either run's effect lies within this factor of its margin.
VERDICT_NEAR = 2.0

#: The kinds of numbers ``record`` takes: those of ``TOLERANCES``, and claims' verdicts.
KINDS = (*TOLERANCES, "verdict")


def path_for(folder: str | Path, chapter: str) -> Path:
    return Path(folder) / "numbers" / f"{chapter}.json"


def record(folder: str | Path, chapter: str, kind: str, **numbers: Number | list[Number]) -> Path:
    """Add ``numbers`` (name -> a number or a list, e.g. one per layer) of ``kind`` to the chapter's
    file, replacing those of the same name; returns its path."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    path = path_for(folder, chapter)
    table = read(path) if path.exists() else {}
    for name, value in numbers.items():
        table[name] = {"kind": kind, "value": _plain(value)}
    atomic_write_text(path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return path


def record_verdicts(folder: str | Path, chapter: str, claims: pd.DataFrame) -> Path:
    """Record each row of a claims table (``claims.COLUMNS``) as ``[holds, effect, margin]``, named
    by its claim, of kind ``verdict``."""
    return record(folder, chapter, "verdict",
                  **{r.claim: [r.holds, r.effect, r.margin] for r in claims.itertuples(index=False)})


def verdicts_agree(a: list, b: list) -> bool:
    """Two recorded verdicts ``[holds, effect, margin]`` agree: the same verdict, or different
    ones where either run's |effect| lies within ``VERDICT_NEAR`` of its margin (a verdict is YES
    above the margin, NO below minus the margin; ``claims.core.decide``)."""
    def near(effect, margin):
        return (effect is not None and margin is not None and math.isfinite(effect) and math.isfinite(margin)
                and margin / VERDICT_NEAR <= abs(effect) <= margin * VERDICT_NEAR)
    return a[0] == b[0] or near(*a[1:]) or near(*b[1:])


def read(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def differences(reference: dict, fresh: dict) -> list[str]:
    """One line for each number of ``reference`` that ``fresh`` lacks or that differs by more than
    its kind's tolerance, and for each number ``fresh`` has in addition; [] when they agree."""
    lines = [f"{name}: not recorded" for name in reference if name not in fresh]
    lines += [f"{name}: recorded, but not in the reference" for name in fresh if name not in reference]
    for name in sorted(set(reference) & set(fresh)):
        kind, want, got = reference[name]["kind"], reference[name]["value"], fresh[name]["value"]
        want_list, got_list = (want, got) if isinstance(want, list) else ([want], [got])
        if not isinstance(got, list) == isinstance(want, list) or len(want_list) != len(got_list):
            lines.append(f"{name}: {got} has another shape than the reference {want}")
        elif kind == "verdict":
            if not verdicts_agree(want, got):
                lines.append(f"{name} (verdict, [holds, effect, margin]; may change only within a factor "
                             f"{VERDICT_NEAR:g} of the margin): {got} against the reference {want}")
        elif not _lists_agree(TOLERANCES[kind], want_list, got_list):
            lines.append(f"{name} ({kind}, {TOLERANCES[kind]}): {got} against the reference {want}")
    return lines


def _lists_agree(tolerance: Tolerance, want: list[Number], got: list[Number]) -> bool:
    """Each pair agrees (``Tolerance.agree``) and, with ``tolerance.shift``, the geometric mean of
    the ratios got/want over the pairs compared (nonzero, of one sign) lies within 1 ± shift."""
    scale = _largest(want)
    if not all(tolerance.agree(a, b, scale) for a, b in zip(want, got)):
        return False
    return tolerance.shift is None or abs(list_shift(want, got, tolerance.floor)) <= tolerance.shift


def list_shift(want: list[Number], got: list[Number], floor: float = 0.0) -> float:
    """How far ``got`` moved from ``want`` as a whole: the geometric mean of the ratios got/want,
    minus 1, over the pairs that are nonzero, of one sign, and not both below ``floor`` times
    ``want``'s largest magnitude; 0.0 when there are none."""
    scale = _largest(want)
    logs = [math.log(b / a) for a, b in zip(want, got)
            if a is not None and b is not None and a * b > 0 and max(abs(a), abs(b)) >= floor * scale]
    return math.exp(sum(logs) / len(logs)) - 1 if logs else 0.0


def _largest(values: list[Number]) -> float:
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    return max(finite, default=0.0)


def _plain(value):
    """JSON-ready: numpy scalars as Python numbers, pandas' missing value (NA) as None."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value

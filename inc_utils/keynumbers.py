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
code paths (``benchmarks/cpu_paths.py``; the numbers are in ``tests/notebooks/README.md``) and
stay tight enough that a 10% change of a recorded NC measure fails. Only measures that hold across
code paths are recorded: at smoke scale the scale-free NC1 family (relative within-class trace,
NC1, CDNV), NC3 and NC4 move by at most 5%, while the raw traces move by up to 14% and the NC2
measures by up to a factor of five, so those are shown but not checked.
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
    noise there, not a result."""

    relative: float = 0.0
    absolute: float = 0.0
    floor: float = 0.0

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
    "measure": Tolerance(relative=0.08, floor=1e-3),   # scale-free NC measures; a 10% change fails
    "accuracy": Tolerance(absolute=0.02),               # fractions of a split
    "share": Tolerance(absolute=0.02),                  # other fractions (e.g. the weights a mask keeps)
    "layer": Tolerance(),                               # layers of collapse: exact
    "count": Tolerance(),                               # counts: exact
}


def path_for(folder: str | Path, chapter: str) -> Path:
    return Path(folder) / "numbers" / f"{chapter}.json"


def record(folder: str | Path, chapter: str, kind: str, **numbers: Number | list[Number]) -> Path:
    """Add ``numbers`` (name -> a number or a list, e.g. one per layer) of ``kind`` to the chapter's
    file, replacing those of the same name; returns its path."""
    if kind not in TOLERANCES:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(TOLERANCES)}")
    path = path_for(folder, chapter)
    table = read(path) if path.exists() else {}
    for name, value in numbers.items():
        table[name] = {"kind": kind, "value": _plain(value)}
    atomic_write_text(path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return path


def read(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def differences(reference: dict, fresh: dict) -> list[str]:
    """One line for each number of ``reference`` that ``fresh`` lacks or that differs by more than
    its kind's tolerance, and for each number ``fresh`` has in addition; [] when they agree."""
    lines = [f"{name}: not recorded" for name in reference if name not in fresh]
    lines += [f"{name}: recorded, but not in the reference" for name in fresh if name not in reference]
    for name in sorted(set(reference) & set(fresh)):
        kind, want, got = reference[name]["kind"], reference[name]["value"], fresh[name]["value"]
        tolerance = TOLERANCES[kind]
        want_list, got_list = (want, got) if isinstance(want, list) else ([want], [got])
        if not isinstance(got, list) == isinstance(want, list) or len(want_list) != len(got_list):
            lines.append(f"{name}: {got} has another shape than the reference {want}")
        elif not all(tolerance.agree(a, b, _largest(want_list)) for a, b in zip(want_list, got_list)):
            lines.append(f"{name} ({kind}, {tolerance}): {got} against the reference {want}")
    return lines


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

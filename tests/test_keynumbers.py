"""Key numbers: recorded per chapter, compared by kind; noise passes, a real change fails."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inc_utils import keynumbers

REFERENCES = Path(__file__).resolve().parent / "notebooks"


def test_record_merges_names_and_writes_plain_json(tmp_path):
    keynumbers.record(tmp_path, "01_x", "accuracy", test_acc=np.float64(0.975))
    path = keynumbers.record(tmp_path, "01_x", "layer", collapse=pd.NA, layers=[np.int64(3), None])
    assert path == tmp_path / "numbers" / "01_x.json"
    assert json.loads(path.read_text()) == {"test_acc": {"kind": "accuracy", "value": 0.975},
                                            "collapse": {"kind": "layer", "value": None},
                                            "layers": {"kind": "layer", "value": [3, None]}}
    with pytest.raises(ValueError, match="unknown kind 'speed'"):
        keynumbers.record(tmp_path, "01_x", "speed", seconds=1.0)


def _table(**numbers):
    return {name: {"kind": kind, "value": value} for name, (kind, value) in numbers.items()}


def test_noise_within_the_tolerances_passes_and_each_kind_of_change_fails():
    reference = _table(rel=("measure", [0.576, 0.466, 0.0911, 0.000112]), acc=("accuracy", 0.992),
                       collapse=("layer", 4), never=("layer", None), clusters=("count", 10))
    noisy = _table(rel=("measure", [0.58, 0.46, 0.0925, 0.0004]), acc=("accuracy", 0.9861),
                   collapse=("layer", 4), never=("layer", None), clusters=("count", 10))
    assert keynumbers.differences(reference, noisy) == []
    for name, value in [("rel", [0.576 * 1.1, 0.466 * 1.1, 0.0911 * 1.1, 0.000112]),   # the whole list 10%
                        ("rel", [0.576, 0.466, 0.0911 * 1.3, 0.000112]),                # one layer 30%
                        ("acc", 0.96), ("collapse", 3), ("never", 8), ("clusters", 9)]:
        changed = {**noisy, name: {**noisy[name], "value": value}}
        assert [line.split(" ")[0].rstrip(":") for line in keynumbers.differences(reference, changed)] == [name]
    # one layer by 15% (as measured between CPU code paths and thread counts) is noise; the list's shift is 5%
    assert keynumbers.differences(reference, {**noisy, "rel": {**noisy["rel"], "value": [0.576, 0.466, 0.0911 * 1.15,
                                                                                         0.000112]}}) == []
    assert keynumbers.differences(reference, {k: v for k, v in noisy.items() if k != "acc"}) == ["acc: not recorded"]


def test_a_verdict_may_change_only_where_the_effect_is_near_its_margin(tmp_path):
    from inc_utils.claims.core import judge, table
    clear = judge("clear", "", "", 0.31, 0.036, "")                         # 8.6 margins above: yes
    near = judge("near", "", "", 0.0044, 0.0079, "")                        # 0.56 of its margin: not measurable
    keynumbers.record_verdicts(tmp_path, "01_x", table([clear, near]))
    reference = keynumbers.read(keynumbers.path_for(tmp_path, "01_x"))
    assert reference["clear"] == {"kind": "verdict", "value": ["yes", 0.31, 0.036]}

    def fresh(clear_row, near_row):
        keynumbers.record_verdicts(tmp_path, "01_y", table([clear_row, near_row]))
        return keynumbers.read(keynumbers.path_for(tmp_path, "01_y"))
    assert keynumbers.differences(reference, fresh(clear, near)) == []
    flipped_near = judge("near", "", "", 0.0072, 0.0056, "")                # now yes, 1.3 margins: noise
    assert keynumbers.differences(reference, fresh(clear, flipped_near)) == []
    bumped = judge("clear", "", "", 0.38, 0.50, "")                         # the margin jumped: near in this run
    assert keynumbers.differences(reference, fresh(bumped, near)) == []
    for changed in (judge("clear", "", "", -0.31, 0.036, ""),                # yes -> no
                    judge("clear", "", "", 0.01, 0.5, "")):                   # yes -> far inside the margin
        assert [line.split(" (")[0] for line in keynumbers.differences(reference, fresh(changed, near))] == ["clear"]


def test_missing_and_nan_values_agree_only_with_themselves():
    same = keynumbers.TOLERANCES["measure"]
    assert same.agree(None, None) and same.agree(math.nan, math.nan)
    assert not same.agree(None, 0.5) and not same.agree(math.nan, 0.5) and not same.agree(0.5, None)


@pytest.mark.skipif(not (REFERENCES / "01_intermediate_nc.numbers.json").exists(),
                    reason="no key numbers in the chapter 1 reference yet (make references)")
def test_a_ten_percent_change_of_any_nc_measure_of_the_chapter_1_reference_fails():
    reference = keynumbers.read(REFERENCES / "01_intermediate_nc.numbers.json")
    measures = [name for name, entry in reference.items() if entry["kind"] == "measure"]
    assert len(measures) >= 4                      # the MLP's relative trace, NC1, CDNV and NC3, per layer
    for name in measures:
        values = reference[name]["value"]
        changed = {**reference, name: {"kind": "measure", "value": [v * 1.1 if v is not None else None
                                                                      for v in values]}}
        assert [line.split(" (")[0] for line in keynumbers.differences(reference, changed)] == [name]

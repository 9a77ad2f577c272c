"""Claims tables: each verdict follows its rule on hand-made results, both ways."""
import numpy as np
import pandas as pd
import pytest

from inc_utils import claims as K


def test_bootstrap_interval_brackets_a_perfect_correlation():
    x = np.arange(20.0)
    lo, hi = K.bootstrap_spearman(x, 2 * x + 1, n=200)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    lo, hi = K.bootstrap_spearman(rng.normal(size=200), rng.normal(size=200), n=300)
    assert lo < 0 < hi


def test_decide_is_one_rule_on_effect_and_margin():
    assert K.decide(0.3, 0.1) == K.YES and K.decide(-0.3, 0.1) == K.NO
    assert K.decide(0.05, 0.1) == K.NOT_MEASURABLE and K.decide(-0.1, 0.1) == K.NOT_MEASURABLE
    assert K.decide(0.0, 0.0) == K.NOT_MEASURABLE                       # an exact tie is no evidence either way
    assert K.decide(float("nan"), 0.1) == K.NOT_MEASURABLE
    with pytest.raises(ValueError):
        K.decide(1.0, -0.1)


def test_judge_and_unmeasurable_rows_carry_their_numbers():
    row = K.judge("c", "t", "r", effect=0.03, margin=0.012, basis="2 SE")
    assert (row.effect, row.margin, row.basis, row.holds) == (0.03, 0.012, "2 SE", K.YES)
    row = K.unmeasurable("c", "t", "r", "one seed")
    assert row.holds == K.NOT_MEASURABLE and row.basis == "one seed"


def test_binomial_errors():
    assert K.binomial_se(0.5, 100) == pytest.approx(0.05)
    assert K.difference_se(0.5, 100, 0.5, 100) == pytest.approx(0.05 * 2 ** 0.5)


def test_group_bootstrap_resamples_whole_groups():
    # Two groups of identical points: resampling groups gives only the two group-level draws,
    # so the correlation is either undefined (one group twice) or perfect.
    x, y = np.r_[np.zeros(5), np.ones(5)], np.r_[np.zeros(5), np.ones(5)]
    lo, hi = K.bootstrap_spearman(x, y, groups=[0] * 5 + [1] * 5, n=200)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)


def test_save_writes_the_named_folder(tmp_path):
    path = K.save(K.table([K.judge("c", "t", "r", 1.0, 0.5, "b")]), "01_x", tmp_path / "claims")
    assert path == tmp_path / "claims" / "01_x.csv"
    assert pd.read_csv(path).holds.tolist() == [K.YES]


def test_markdown_table_escapes_pipes_and_bolds_verdicts():
    text = K.to_markdown(K.table([K.judge("a|b", "t", "r", -0.5, 0.1, "2 SE")]))
    lines = text.splitlines()
    assert lines[0] == "| claim | thesis | this run | effect | margin | holds |"
    assert lines[2] == r"| a\|b | t | r | -0.5 | 0.1 (2 SE) | **no** |"


def test_results_section_replaces_only_the_marked_block(tmp_path):
    for chapter, effects in (("01_a", [1.0, -1.0]), ("02_b", [0.0])):
        K.save(K.table([K.judge(f"c{i}", "t", "r", e, 0.5, "b") for i, e in enumerate(effects)]), chapter,
               tmp_path / "claims")
    claims = K.gather(tmp_path)
    assert claims.chapter.tolist() == ["01_a", "01_a", "02_b"]
    section = K.results_section(claims, {"scale": "cpu", "commit": "0123456789", "date": "2026-11-30",
                                         "seconds": 1800})
    assert "commit 0123456789, 2026-11-30, 30 min" in section and "Of 3 claims, 1 hold, 1 do not, and 1 are not measurable" in section
    readme = f"# T\n\n{K.RESULTS_BEGIN}\nold\n{K.RESULTS_END}\n\n## Next\n"
    new = K.replace_results(readme, section)
    assert new.startswith("# T\n\n") and new.endswith("\n\n## Next\n") and "\nold\n" not in new
    assert new.count("| c0 | t | r | 1 | 0.5 (b) | **yes** |") == 1
    with pytest.raises(ValueError):
        K.replace_results("# no markers", section)

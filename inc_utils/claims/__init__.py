"""Claims tables: what the thesis claims, what this run measured, and whether the claim holds.

``core`` holds the table's shape and the single verdict rule (effect against a margin over noise
or chance); ``chapterN`` holds chapter N's rules, each with its constants named at its top.
"""
from .chapter1 import across_experiments, chapter1
from .chapter2 import chapter2
from .chapter3 import THESIS_TABLE_4_3_1, THESIS_TABLE_4_3_2, chapter3, thesis_tables_4_3
from .chapter3 import metric_agreement as chapter3_agreement, nesting as chapter3_nesting
from .chapter4 import chapter4
from .chapter5 import chapter5
from .chapter6 import chapter6
from .core import (COLUMNS, NO, NOT_MEASURABLE, RESULTS_BEGIN, RESULTS_END, YES, Z, Claim, binomial_se,
                   bootstrap_spearman, decide, difference_se, gather, judge, number, replace_results,
                   results_section, save, spearman, table, to_markdown, unmeasurable)

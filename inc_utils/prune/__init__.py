"""Cutting a network at its layer of collapse (thesis 5.5.1).

``cut`` is the library (a model and its batches in, heads, truncated models, costs, speed and
exported files out); ``runs`` applies it to run folders (``inc prune``) and to a sweep's runs.
"""
from .cut import (GRAM_BUDGET_BYTES, HEADS, MAX_RIDGE_FEATURES, CutError, Head, check_layer, cost, cost_table,
                  cut_layers, earliest_keeping, evaluate_heads, export, fit_heads, layer_table, speed_table, trunk,
                  truncate)
from .runs import prune_run, rank_correlation, sweep_keeps

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 2 — Layer of collapse and generalization
#
# Companion to thesis section 4.2 and appendix C.1. Does the depth at which a network's features
# collapse say anything about how well it generalizes? We train the same architecture over a grid
# of learning rates, weight decays and seeds, find each trained network's layer of collapse
# (chapter 1's rule), and plot it against the test error.
#
# What the thesis reports for MLP-10, ConvNet-20 and ResNet50 on CIFAR10: the best-generalizing
# hyperparameters collapse somewhere in the middle of the network; repeated seeds of one
# hyperparameter pair land close together in both collapse layer and error; slightly worse
# networks collapse both earlier and later than the best; and networks with the same collapse
# layer can still generalize very differently. Networks under 35% test accuracy, networks that do
# not fit their training set (train accuracy under `train_accuracy_floor`, our reading of the
# thesis's "failed to converge to interpolating the dataset"), and runs that diverged are left out
# and counted.

# %% tags=["colab-install"]
# Colab: this copy of the notebook names no repository to install the package from
# (`inc colab` writes it here from the git remote). Elsewhere this cell does nothing.
import importlib.util
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("inc_utils") is None:
    raise ModuleNotFoundError("inc_utils is not installed: run !pip install "
                              "'inc-utils[notebooks] @ git+URL' in a cell, with URL the address "
                              "of the repository this notebook comes from")

# %% tags=["parameters"]
sweeps = {
    "MLP-8 on digits": {
        "base": {"dataset": "digits", "arch": "mlp", "depth": 8, "width": 128, "epochs": 200,
                 "lr_milestones": [57, 114], "eval_every": 50},
        "grid": {"lr": [0.01, 0.05], "weight_decay": [0.001, 0.005], "seed": [0, 1]},
    },
}
accuracy_floor = 0.35       # test accuracy under which a run is left out (thesis 4.2)
train_accuracy_floor = 0.9  # train accuracy under which a run counts as not interpolating (Fig 4.2.1)
collapse_measure = "rel_trace_w"
collapse_threshold = 0.2
executor = "local"         # or "processes" (with jobs), "submitit-local", "slurm"
jobs = 1                   # worker processes of the "processes" executor, one torch thread each
batched = True             # MLPs that differ only in lr, weight decay, momentum or seed train together
group_size = 33            # most MLPs per batched group; lower it if the GPU runs out of memory
device = "auto"
data_dir = None
scale = None               # a name under params/ (smoke, colab, paper, ...): its values replace those above
download = None            # fetch missing torchvision datasets; None: in Colab only
drive_folder = None        # Colab: keep runs in this Google Drive folder, to resume after a dropped session

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown

from inc_utils import claims as K
from inc_utils import plots
from inc_utils import session
from inc_utils.config import from_dict
from inc_utils.measure import collapse_summary
from inc_utils.models import num_layers
from inc_utils.sweep import SweepConfig, plan, run_sweep

globals().update(session.setup("02_collapse_vs_generalization", globals()))  # scale, folders, threads, device, data
sweep_configs = {label: from_dict(s, SweepConfig).configs() for label, s in sweeps.items()}

# %% [markdown]
# ## The sweep
# Every combination of the grid is one run; runs that already finished are cache hits. With
# `batched=True`, MLPs that differ only in learning rate, weight decay or seed train together.

# %%
for label, configs in sweep_configs.items():
    todo = plan(configs)
    print(f"{label}: {len(configs)} runs; {int((todo.model_epochs_left > 0).sum())} to train "
          f"({int(todo.model_epochs_left.sum())} model-epochs)")

# %%
for configs in sweep_configs.values():
    run_sweep(configs, executor=executor, jobs=jobs, batched=batched, group_size=group_size, device=device, data_root=data_dir)

# %% [markdown]
# ## Layer of collapse per run
# Each finished run is measured at its last epoch. `included` marks the runs that enter the figure.

# %%
# NBVAL_CHECK_OUTPUT
summary = pd.concat([collapse_summary(configs, measure=collapse_measure, threshold=collapse_threshold,
                                      accuracy_floor=accuracy_floor, train_accuracy_floor=train_accuracy_floor,
                                      device=device, data_root=data_dir)
                     .assign(sweep=label) for label, configs in sweep_configs.items()], ignore_index=True)
columns = ["sweep", "lr", "weight_decay", "seed", "status", "train_acc", "test_acc", "collapse_layer", "included"]
print(summary[columns].round(3).to_string(index=False))
for label, rows in summary.groupby("sweep", sort=False):
    excluded = rows[~rows.included]
    reasons = ", ".join(f"{n} {r}" for r, n in excluded.reason.value_counts().items())
    print(f"{label}: {len(excluded)} of {len(rows)} runs excluded" + (f" ({reasons})" if reasons else ""))

# %% [markdown]
# ## Collapse layer against test error (thesis Fig 4.2.1)
# One figure per sweep, `ch2_collapse_vs_error_<i>` in the order of the parameter file: thesis
# Fig 4.2.1 (a) MLP-10 and (b) ConvNet-20 on CIFAR10, enlarged as C.1.2 and C.1.3, and C.1.1 for
# ResNet50, when the scale's parameters hold those sweeps. One colour per learning rate, one
# marker per weight decay, each seed its own point (slightly jittered sideways). Runs whose
# features never collapse sit at "none". Runs below the accuracy floor or diverged are left out,
# as in the thesis, and counted in the table above.

# %%
for i, (label, configs) in enumerate(sweep_configs.items()):
    rows = summary[(summary.sweep == label) & summary.included]
    fig = plots.plot_collapse_vs_error(rows, num_layers(configs[0].arch, configs[0].depth), label)
    plots.save_figure(fig, f"ch2_collapse_vs_error_{i}", figures_dir)
    plt.show()

# %% [markdown]
# ## Per hyperparameter pair
# Mean and spread over seeds. The thesis's second observation (4.2) is that repeated seeds of one
# pair land close together in both collapse layer and error; the claims table below checks the
# collapse-layer half of that on this sweep.

# %%
# NBVAL_CHECK_OUTPUT
pairs = (summary[summary.included].astype({"collapse_layer": float})
         .groupby(["sweep", "lr", "weight_decay"], sort=False)
         .agg(runs=("seed", "size"), test_acc=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
              collapse_mean=("collapse_layer", "mean"), collapse_min=("collapse_layer", "min"),
              collapse_max=("collapse_layer", "max")))
print(pairs.round(3).to_string())

# %% [markdown]
# ## What this run shows: the claims table
#
# The prose of this chapter states what the thesis reports (section 4.2). Each row is a claim of the
# thesis, the number this run measured, and whether the claim holds here by a fixed rule
# (`inc_utils.claims.chapter2`; the tolerances are named constants in that module). "Not measurable
# at this scale" means the run lacks what the rule needs. This table, not the prose above, is what
# this run shows; it is also saved for the book's index page.

# %%
# NBVAL_CHECK_OUTPUT
claims = pd.concat([K.chapter2(summary[summary.sweep == label], num_layers(configs[0].arch, configs[0].depth),
                               label=label if len(sweep_configs) > 1 else None)
                    for label, configs in sweep_configs.items()], ignore_index=True)
K.save(claims, "02_collapse_vs_generalization", out_dir / "claims")
Markdown(K.to_markdown(claims))

# %% [markdown]
# ## Export
# The full run table (every run, included or not) for your own analysis: `summary.to_csv(...)`.

# %%
summary

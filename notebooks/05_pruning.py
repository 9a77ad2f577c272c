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
# # Chapter 5 — Cutting the network at its layer of collapse
#
# Companion to thesis section 5.5.1 ("Layer-wise Pruning"), and the first chapter that goes past
# what the thesis measured. The thesis's discussion argues (5.1) that once the features have
# collapsed, the remaining layers add essentially no computation, and proposes in 5.5.1 that a
# network trained into intermediate neural collapse could therefore lose whole layers at
# inference time, instead of the usual pruning of single weights or neurons. It does not test
# the proposal. Here we do.
#
# For every layer *l* we keep the network up to that layer and replace everything after it by a
# linear head fitted in closed form on the training features of layer *l*, with no gradient
# steps: (a) the nearest-class-centre rule with the training class means (the NC4 classifier of
# chapter 1), and (b) the least-squares fit to the one-hot targets with a ridge penalty equal to
# the run's weight decay (the objective the network itself was trained on). We then compare each
# cut network with the whole one: test accuracy, parameters, multiply-adds, measured speed.
# Finally, over chapter 2's hyperparameter sweep, we ask whether the earliest layer that keeps
# the network's accuracy moves with the layer of collapse.

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
experiment = {"dataset": "digits", "arch": "mlp", "depth": 8, "width": 256, "epochs": 400, "lr": 0.05,
              "weight_decay": 0.005, "lr_milestones": [114, 228], "checkpoints": [10, 25, 50, 100, 200],
              "eval_every": 10}
sweep_scale = "smoke"      # the scale of chapter 2's sweep whose runs are compared (None: skip that section)
tolerance = 0.01           # a cut keeps the accuracy if it loses at most this much test accuracy (1 point)
collapse_measure = "rel_trace_w"
collapse_threshold = 0.2
latency_repeats = 30
device = "auto"
data_dir = None
scale = None               # a name under params/ (smoke, cpu, paper, ...): its values replace those above
download = None            # fetch missing torchvision datasets; None: in Colab only
drive_folder = None        # Colab: keep runs in this Google Drive folder, to resume after a dropped session

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown

from inc_utils import claims as K
from inc_utils import plots
from inc_utils import prune as P
from inc_utils import session
from inc_utils.config import from_dict
from inc_utils.data import load_splits
from inc_utils.measure import load_model, measure_run
from inc_utils.metrics import collapse_layer
from inc_utils.sweep import configs_in, run_sweep
from inc_utils.train import train

globals().update(session.setup("05_pruning", globals()))  # scale, folders, threads, device, data
cfg = from_dict(experiment)
label = f"{cfg.arch.upper()}-{cfg.depth} on {cfg.dataset}"

# %% [markdown]
# ## The network and its layer of collapse
#
# The same run as chapter 1's first experiment (a cache hit if chapter 1 ran), at its last
# epoch, with chapter 1's rule for the layer of collapse.

# %%
run = train(cfg, device=device, data_root=data_dir)
metrics, _ = measure_run(run, epochs=[cfg.epochs], device=device, data_root=data_dir)
collapse = collapse_layer(metrics, collapse_measure, collapse_threshold)
train_set, test_set = load_splits(cfg, device, data_dir)
model = load_model(run, cfg.epochs, device, train_set)
print(f"{label}: {run.name}, layer of collapse {collapse} (layers 0..{len(P.cut_layers(model)) - 1})")

# %% [markdown]
# ## Accuracy of the network cut at each layer
#
# One row per layer and head: test accuracy, agreement with the full network's predictions, and
# the parameters and multiply-adds (per image, Linear/Conv only) kept, as fractions of the full
# network's. Layer 0 keeps nothing of the network: its heads are linear classifiers of the pixels.
# The row with layer −1 is the full network.

# %%
# NBVAL_CHECK_OUTPUT
layers = P.layer_table(model, lambda: train_set.batches(1024), lambda: test_set.batches(1024), train_set.in_shape,
                       ridge=cfg.weight_decay)
print(layers[["layer", "head", "accuracy", "agreement", "params_frac", "macs_frac"]].round(3).to_string(index=False))

# %% [markdown]
# The figure: each head's test accuracy against the layer at which the network is cut, the full
# network's accuracy as the dotted black line, and the layer of collapse dashed in green.

# %%
plots.save_figure(plots.plot_pruning_accuracy(layers, collapse, f"Cut and refit — {label}"), "ch5_accuracy",
                  figures_dir)
plt.show()

# %% [markdown]
# ## What a cut saves
#
# Parameters and multiply-adds are counted; speed is measured, here and now, on this machine:
# the full network and each cut one are called in turns at batch 1 (latency) and batch 256
# (throughput), and the median of the repeats is kept. The speed-up is the full network's time
# over the cut one's. Timings change from machine to machine and run to run; the counts do not.

# %%
ncc_heads = P.fit_heads(model, lambda: train_set.batches(1024), heads=("ncc",))
cut = {layer: P.truncate(model, head) for (layer, _), head in ncc_heads.items()}
speed = P.speed_table(model, cut, train_set.in_shape, (1, 256), latency_repeats)
costs = layers[layers["head"] == "ridge"][["layer", "params_frac", "macs_frac"]]
plots.save_figure(plots.plot_pruning_cost(costs, speed, collapse, f"Cost of the cut network — {label}"), "ch5_cost",
                  figures_dir)
plt.show()
print(speed.pivot(index="layer", columns="batch", values="speedup").round(2).to_string())

# %% [markdown]
# The cut network is an ordinary PyTorch module. Saved with `torch.export` it runs without this
# package; the command line does the same for any run:
# `inc prune RUN --layer auto --head ridge -o model.pt2`.

# %%
if collapse is not None:
    head = P.fit_heads(model, lambda: train_set.batches(1024), [collapse], ("ridge",), ridge=cfg.weight_decay)
    target = out_dir / "ch5_cut_at_collapse.pt2"
    path = P.export(P.truncate(model, head[collapse, "ridge"]), target, train_set.in_shape)
    print("exported the network cut at the collapse layer to", path)

# %% [markdown]
# ## Across chapter 2's sweep
#
# Each run of chapter 2's learning-rate × weight-decay × seed grid has its own layer of
# collapse. For each, we find the earliest layer whose head keeps the full network's test
# accuracy within the tolerance, and compute Spearman's rank correlation with the collapse
# layer ("never" ranks after the last layer). Runs that are missing are trained here (a cache
# hit when chapter 2 ran first); runs below chapter 2's accuracy floors, and ResNets, are left out.

# %%
sweep_settings = session.scale_parameters("02_collapse_vs_generalization", sweep_scale)
if sweep_settings:
    sweep_configs = configs_in(sweep_settings)
    run_sweep(sweep_configs, batched=sweep_settings.get("batched", True),
              group_size=sweep_settings.get("group_size"), device=device, data_root=data_dir)
    sweep = P.sweep_keeps(sweep_configs, tolerance=tolerance, measure=collapse_measure, threshold=collapse_threshold,
                          accuracy_floor=sweep_settings.get("accuracy_floor", 0.35),
                          train_accuracy_floor=sweep_settings.get("train_accuracy_floor", 0.0), device=device,
                          data_root=data_dir)
else:
    sweep = None
    print("no sweep_scale: the sweep section is skipped")

# %%
# NBVAL_CHECK_OUTPUT
correlations = None
if sweep is not None:
    included = sweep[sweep.included]
    columns = ["architecture", "lr", "weight_decay", "seed", "test_acc", "collapse_layer", "keeps_ncc", "keeps_ridge"]
    print(included[columns].round(3).to_string(index=False))
    for architecture, rows in included.groupby("architecture", sort=False):
        for head in P.HEADS:
            rho, p, n = P.rank_correlation(rows, f"keeps_{head}")
            print(f"{architecture}, {head}: Spearman rho = {rho:.2f} (p = {p:.2g}, {n} runs)")
    correlations = {head: P.rank_correlation(included, f"keeps_{head}") for head in P.HEADS}
    print(f"{len(sweep) - len(included)} of {len(sweep)} runs left out: "
          f"{', '.join(f'{n} {r}' for r, n in sweep[~sweep.included].reason.value_counts().items()) or 'none'}")

# %%
if sweep is not None:
    for i, (architecture, rows) in enumerate(sweep[sweep.included].groupby("architecture", sort=False)):
        fig = plots.plot_keep_vs_collapse(rows, int(rows.num_layers.iloc[0]), architecture)
        plots.save_figure(fig, f"ch5_keep_vs_collapse_{i}", figures_dir)
        plt.show()

# %% [markdown]
# ## What this run shows: the claims table
#
# What thesis 5.5.1 proposes (and 5.1, 5.3 argue), next to what this run measured, by the fixed
# rules of `inc_utils.claims.chapter5`. "Keeps the accuracy" means losing at most `tolerance` of
# test accuracy; the rank correlations are over all included sweep runs (every architecture
# together), one per head. This table, not the prose above, is what this run shows; it is also
# saved for the book's index page.

# %%
# NBVAL_CHECK_OUTPUT
claims = K.chapter5(layers, collapse, correlations, tolerance)
K.save(claims, "05_pruning", out_dir / "claims")
Markdown(K.to_markdown(claims))

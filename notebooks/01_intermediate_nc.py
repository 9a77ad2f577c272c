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
# # Chapter 1 — Neural collapse in intermediate layers
#
# Companion to thesis section 4.1 and appendix B. Neural collapse (NC) was first described for
# the *last* hidden layer of a classifier trained past zero training error: the features of each
# class shrink onto their class mean (NC1), the class means spread out into a simplex
# equiangular tight frame (NC2), the classifier's weights line up with those means (NC3), and the
# network ends up classifying like a nearest-class-centre rule (NC4). Here we measure all four
# properties at **every** layer, at several checkpoints during training, and find the layer from
# which the network's features are collapsed.
#
# Conventions, decided once in `inc_utils`: the features of layer *l* are the input to the
# network's *l*-th Linear/Conv module, so layer 0 is the image itself; every measure is computed
# on the training set with the model in eval mode, streaming the data twice (never holding all
# activations). The layer of collapse is the first layer from which the relative within-class
# trace Tr Σ_W / (Tr Σ_W + Tr Σ_B) stays below 0.2 (thesis 4.1.1).

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
experiments = [
    {"dataset": "digits", "arch": "mlp", "depth": 8, "width": 256, "epochs": 400, "lr": 0.05,
     "weight_decay": 0.005, "lr_milestones": [114, 228], "checkpoints": [10, 25, 50, 100, 200], "eval_every": 10},
]
collapse_measure = "rel_trace_w"
collapse_threshold = 0.2
device = "auto"
executor = "local"         # or "processes" (with jobs): train the experiments in parallel worker processes
jobs = 1                   # worker processes of the "processes" executor, one torch thread each
data_dir = None
scale = None               # a name under params/ (smoke, colab, paper, ...): its values replace those above
download = None            # fetch missing torchvision datasets; None: in Colab only
drive_folder = None        # Colab: keep runs in this Google Drive folder, to resume after a dropped session

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown

from inc_utils import claims as K
from inc_utils import keynumbers
from inc_utils import metrics as M
from inc_utils import plots
from inc_utils import session
from inc_utils.config import from_dict
from inc_utils.measure import measure_run, shapes_and_sizes
from inc_utils.sweep import run_sweep
from inc_utils.train import train

globals().update(session.setup("01_intermediate_nc", globals()))  # scale, folders, threads, device, data
configs = [from_dict(e) for e in experiments]

# %% [markdown]
# ## Train (or load) every experiment and measure each checkpoint
#
# Runs are cached by the hash of their config: if a run already finished in `runs/` (or
# `$INC_RUNS_DIR`) nothing is trained, and measurements already in its `metrics.csv` are reused.
# With `executor="processes"` the unfinished experiments train in `jobs` worker processes (the
# one with the most work first), each exactly as `train` would here; then each is measured.

# %%
if executor != "local":
    run_sweep(configs, executor=executor, jobs=jobs, batched=False, device=device, data_root=data_dir)
results = {}
for cfg in configs:
    run = train(cfg, device=device, data_root=data_dir)
    metrics, spectra = measure_run(run, device=device, data_root=data_dir)
    label = f"{cfg.arch.upper()}-{cfg.depth} on {cfg.dataset}"
    results[label] = (run, metrics, spectra)
    print(f"{label}: {run.status()['status']}, {run.name}")

# %% [markdown]
# ## Final accuracies and layer of collapse
#
# The layer of collapse under the default rule (the measure stays below the threshold from that
# layer to the last), under the thesis's literal wording (the earliest layer below it, 4.1.1), and
# with NC1 or CDNV (the authors' earlier code) in place of the relative trace.

# %%
def summary_row(label, run, metrics):
    last = metrics[metrics.epoch == metrics.epoch.max()]
    net = last[last.measure == "net_acc"].set_index("split")["value"]
    return {"experiment": label, "epoch": int(last.epoch.iloc[0]),
            "train_acc": net["train"], "test_acc": net["test"],
            "collapse (stays below)": M.collapse_layer(last, collapse_measure, collapse_threshold),
            "collapse (first below)": M.collapse_layer(last, collapse_measure, collapse_threshold, rule="first"),
            "collapse (NC1)": M.collapse_layer(last, M.NC1, collapse_threshold),
            "collapse (CDNV)": M.collapse_layer(last, M.CDNV, collapse_threshold)}


summary = pd.DataFrame([summary_row(label, run, m) for label, (run, m, _) in results.items()])
for row in summary.to_dict("records"):  # checked by the tests within tolerances that hold on every CPU
    keynumbers.record(out_dir, "01_intermediate_nc", "accuracy",
                      **{f"{row['experiment']}: {key}": row[key] for key in ("train_acc", "test_acc")})
    keynumbers.record(out_dir, "01_intermediate_nc", "layer",
                      **{f"{row['experiment']}: {key}": row[key] for key in row if key.startswith("collapse")})
print(summary.round(3).to_string(index=False))

# %% [markdown]
# ## The main experiment, measure by measure
#
# The first experiment of the parameter list, drawn as in thesis figures 4.1.1–4.1.4: each line
# is one checkpoint (light = early, dark = last), the dashed green line the layer of collapse at
# the end of training, x = layer with 0 the network input.
#
# Figures of this chapter (PNG and PDF in the build's `figures/` folder) and the thesis figures
# they correspond to:
#
# | file | thesis | what it shows |
# |---|---|---|
# | `ch1_accuracy` | accuracy panels of B.0.1, B.0.3, B.0.5, B.0.7 | train/test accuracy and training loss of the first experiment, lr decays dotted |
# | `ch1_nc1` | 4.1.1 (CIFAR10), 4.1.5 (MNIST) | NC1, relative within-class trace, Tr Σ_W, Tr Σ_B, CDNV per layer |
# | `ch1_nc2` | 4.1.2, 4.1.6 | the three NC2 measures (eqs 2.19–2.21) per layer |
# | `ch1_nc3` | 4.1.3, 4.1.7 | relative singular values of each layer's weight; AvCosPABS per layer |
# | `ch1_nc4` | 4.1.4 | NCC accuracy (train, test) and NCC/network agreement per layer |
# | `ch1_grid_<dataset>_overview` | B.0.1–B.0.8 | one row per experiment on that dataset (MLP and ConvNet): accuracy over training, relative within-class trace per layer with the threshold and the layer of collapse, relative singular values of every weight with each one's spectral gap |
# | `ch1_grid_<dataset>_nc12`, `_nc34` | B.0.1–B.0.8 | one row per experiment on that dataset, NC1–2 and NC3–4 measures |
#
# Not reproduced as in the thesis: the thesis draws figures 4.1.1–4.1.7 for MLP-10 on CIFAR10
# and on MNIST; here the single-experiment figures are drawn for the first experiment of the
# parameter file only (which network and dataset that is depends on the scale), and every other
# experiment appears as a row of the appendix-B grids. The thesis's text copy has
# no images, so its panel layout is matched from the captions and section 4.1, not pixel for pixel.

# %%
label, (run, metrics, spectra) = next(iter(results.items()))
collapse = M.collapse_layer(metrics[metrics.epoch == metrics.epoch.max()], collapse_measure, collapse_threshold)
plots.save_figure(plots.plot_accuracy(run.read_log(), label), "ch1_accuracy", figures_dir)
plt.show()

# %% [markdown]
# **NC1.** The thesis finds (4.1.1, Fig 4.1.1) that within-class variability, relative to the
# between-class variability, falls with depth and falls further as training goes on, so that
# beyond the collapse layer the features of each class sit close to their mean. Whether this run
# agrees is in the claims table at the end.

# %%
plots.save_figure(plots.plot_nc1(metrics, f"NC1 — {label}", collapse, collapse_threshold), "ch1_nc1", figures_dir)
plt.show()

# %%
last = metrics[(metrics.epoch == metrics.epoch.max()) & (metrics.split == "train") & (metrics.layer >= 0)]
table = last.pivot_table(index="measure", columns="layer", values="value").loc[list(M.MEASURES)]
for measure in (M.REL_TRACE_W, M.NC1, M.CDNV, M.NC3_AVCOS, M.NCC_ACC, M.NCC_AGREE):  # NC2, raw traces: CPU noise
    keynumbers.record(out_dir, "01_intermediate_nc", "accuracy" if measure.startswith("ncc") else "measure",
                      **{f"{label}: {measure}": table.loc[measure].tolist()})
print(table.map(lambda v: f"{v:.3g}").to_string())

# %% [markdown]
# **NC2.** The centred class means approach a simplex ETF: equal norms and pairwise cosines of
# −1/(C−1). In the thesis (4.1.1, Fig 4.1.2) the three measures of eqs. 2.19–2.21 shrink with
# training, most clearly after the collapse layer.

# %%
plots.save_figure(plots.plot_nc2(metrics, f"NC2 — {label}", collapse), "ch1_nc2", figures_dir)
plt.show()

# %% [markdown]
# **NC3.** For an intermediate layer the weight cannot equal the class means, but its C largest
# right singular vectors can span the same space as the means, with C equal singular values
# (thesis 2.3.4). Left: the relative singular values σ_i/Σσ of each layer's weight at the end of
# training (the first C marked, 1/C dotted). Right: AvCosPABS, the mean cosine of the principal
# angles between the two subspaces.

# %%
plots.save_figure(plots.plot_nc3(metrics, spectra, f"NC3 — {label}", collapse=collapse), "ch1_nc3", figures_dir)
plt.show()

# %% [markdown]
# **NC4.** Nearest-class-centre classification on each layer's features, with the train class
# means. The thesis (4.1.1, Fig 4.1.4) finds that from the collapse layer on it classifies the
# training set perfectly and matches the network's test accuracy; the claims table checks both.

# %%
plots.save_figure(plots.plot_nc4(metrics, f"NC4 — {label}", collapse), "ch1_nc4", figures_dir)
plt.show()

# %% [markdown]
# ## Across datasets and architectures (appendix B layout)
#
# Three figures per dataset, one row per experiment on it: an overview (accuracy over training,
# the relative within-class trace per layer at the end with the threshold and the layer of
# collapse, the relative singular values of every weight with its spectral gap), then the NC1–2
# and the NC3–4 measures per layer at every checkpoint (the epoch legend is shared by the rows;
# each row marks its own layer of collapse). The thesis finds that simpler data collapse earlier
# in the network, in NC1, NC3 and NC4 but "less perfectly in NC2" (4.1.2), and that ConvNets show
# NC1–4 "not as perfectly as" MLPs, with a "somewhat weaker NC3" (4.1.3, 5.1.3).

# %%
by_dataset = {}
for cfg, (label, (_, m, _)) in zip(configs, results.items()):
    by_dataset.setdefault(cfg.dataset, {})[label] = m
for dataset, tables in by_dataset.items():
    overview = {label: (results[label][0].read_log(), m, results[label][2]) for label, m in tables.items()}
    fig = plots.plot_overview(overview, f"{dataset}: accuracy, collapse and weight spectra",
                              collapse_measure, collapse_threshold)
    plots.save_figure(fig, f"ch1_grid_{dataset}_overview", figures_dir)
    plt.show()
    collapses = {label: M.collapse_layer(m[m.epoch == m.epoch.max()], collapse_measure, collapse_threshold)
                 for label, m in tables.items()}
    for part, panels in (("nc12", plots.GRID_NC12), ("nc34", plots.GRID_NC34)):
        fig = plots.plot_grid(tables, panels, f"{dataset}: NC{part[2]}–{part[3]} per layer", collapses)
        plots.save_figure(fig, f"ch1_grid_{dataset}_{part}", figures_dir)
        plt.show()

# %% [markdown]
# ## What this run shows: the claims table
#
# The prose of this chapter states what the thesis reports (sections 4.1.1-4.1.3, 5.1.1). Each row
# is a claim of the thesis, judged on every experiment of the parameter file (rows labelled by
# experiment), then across experiments: simpler data collapse earlier with the same architecture
# (4.1.2), and NC3 is weaker in a ConvNet than in an MLP on the same data (4.1.3, 5.1.3). A row
# holds ("yes") when its `effect`, signed in the direction the thesis claims, exceeds its `margin`,
# what noise or chance gives (named in the row: binomial errors of accuracies, the fluctuation
# between checkpoints, random subspaces or Gaussian matrices of the layer's shape); "no" when it
# falls below minus the margin; otherwise it is not measurable at this scale
# (`inc_utils.claims.chapter1`). This table, not the prose above, is what this run shows; it is
# also saved for the book's index page.

# %%
rows = []
for cfg, (label, (run, metrics, spectra)) in zip(configs, results.items()):
    shapes, n_train, n_test = shapes_and_sizes(run, data_dir)
    rows.append(K.chapter1(metrics, spectra, shapes, n_train=n_train, n_test=n_test, label=label,
                           measure=collapse_measure, threshold=collapse_threshold))
experiments_by_label = {label: {"dataset": cfg.dataset, "arch": cfg.arch, "depth": cfg.depth, "metrics": m}
                        for cfg, (label, (_, m, _)) in zip(configs, results.items())}
rows.append(K.across_experiments(experiments_by_label, measure=collapse_measure, threshold=collapse_threshold))
claims = pd.concat(rows, ignore_index=True)
K.save(claims, "01_intermediate_nc", out_dir / "claims")
# checked by the tests: a verdict may differ on another CPU only where the effect is near its margin
keynumbers.record_verdicts(out_dir, "01_intermediate_nc", claims)
Markdown(K.to_markdown(claims))

# %% [markdown]
# ## Export
# Every number above is in the tidy table below (one row per experiment, epoch, split, layer and
# measure), ready for `to_csv` or your own plots.

# %%
all_metrics = pd.concat([m.assign(experiment=label) for label, (_, m, _) in results.items()], ignore_index=True)
all_metrics.head()

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
# # Chapter 6 — Lottery tickets against the layer of collapse
#
# Companion to thesis sections 1.3.1, 5.5.2 and 6.3, and past what the thesis measured. The Lottery
# Ticket Hypothesis (1.3.1; Frankle and Carbin 2019) says a trained network holds a sparse
# subnetwork that, trained alone from its initial weights, matches the whole network. Section
# 5.5.2 asks whether the network such a procedure finds in an MLP trained into intermediate neural
# collapse is the same as the network pruned at the layer of collapse (chapter 5), and weakly
# conjectures that it is not: a winning ticket would likely span the full depth, while the layers
# after the collapse do no further work. Section 6.3 leaves this as future work. Here we measure it.
#
# The procedure is iterative magnitude pruning (IMP): train, remove a share of the remaining
# weights with the smallest magnitudes (one threshold across the hidden layers, the output layer
# at a lower rate, as Frankle and Carbin do for fully connected networks), set the survivors back
# to early weights and retrain; repeat. We rewind the survivors to the dense network's weights at
# an early epoch rather than resetting them to the initialisation: Frankle et al. (2020, "Linear
# mode connectivity and the lottery ticket hypothesis") found that resetting fails for deeper
# networks and larger learning rates and rewinding to early in training makes IMP work; our MLP-8
# with BatchNorm and momentum is such a case. The control is a random mask with the same number
# of weights in every layer, trained the same way.
#
# Four families of small networks are then compared on accuracy against remaining parameters:
# the ticket, the random-mask control, the network cut at the layer of collapse with chapter 5's
# closed-form ridge head, and the ticket cut there too (the cut network pruned further). A fifth
# network, only as deep as the layer of collapse and trained from scratch, asks whether the layers
# after the collapse are needed for training even where they are not needed at inference.

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
seeds = [0]                # one IMP chain per seed, each from its own dense network
rounds = 3                 # IMP rounds after round 0 (the dense network retrained on the rounds' schedule)
rate = 0.6                 # share of the remaining hidden weights removed per round
output_rate = 0.3          # share of the remaining output-layer weights removed per round
round_epochs = 40          # epochs per round; learning-rate milestones at the dense schedule's fractions
rewind_epoch = 10          # survivors start from the dense network's weights at this epoch (0: its init)
collapse_measure = "rel_trace_w"
collapse_threshold = 0.2
device = "auto"
executor = "local"         # or "processes" (with jobs): train the seeds' chains in parallel worker processes
jobs = 1                   # worker processes of the "processes" executor, one torch thread each
data_dir = None
scale = None               # a name under params/ (smoke, cpu, paper, ...): its values replace those above
download = None            # fetch missing torchvision datasets; None: in Colab only
drive_folder = None        # Colab: keep runs in this Google Drive folder, to resume after a dropped session

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown

from inc_utils import claims as K
from inc_utils import keynumbers
from inc_utils import plots
from inc_utils import session
from inc_utils import ticket_measures as T
from inc_utils.batched import train_batched
from inc_utils.config import from_dict
from inc_utils.data import load_splits
from inc_utils.lottery import imp_chains
from inc_utils.measure import load_model, measure_run
from inc_utils.metrics import collapse_layer
from inc_utils.models import num_layers
from inc_utils.sweep import run_sweep
from inc_utils.train import train

globals().update(session.setup("06_lottery_tickets", globals()))  # scale, folders, threads, device, data
cfg = from_dict(experiment)
label = f"{cfg.arch.upper()}-{cfg.depth} on {cfg.dataset}"
layers = num_layers(cfg.arch, cfg.depth)
started = time.perf_counter()

# %% [markdown]
# ## The layer of collapse, and every network this chapter trains
#
# The first seed's dense network is chapter 1's first network (a cache hit if chapter 1 ran);
# other seeds are the same configuration with another seed. The layer of collapse is chapter 1's
# rule at the last epoch; the first seed's is the layer every cut below is made at, and the depth
# of the networks trained from scratch at the end.

# %%
def final_metrics(run):
    return measure_run(run, epochs=[run.config.epochs], device=device, data_root=data_dir)[0]


def last_layer_trace(metrics):
    rows = metrics[(metrics["measure"] == collapse_measure) & (metrics["split"] == "train")]
    return float(rows.loc[rows["layer"].idxmax(), "value"])


tic = time.perf_counter()
first = train(cfg.replace(seed=seeds[0]), device=device, data_root=data_dir)
collapse = collapse_layer(final_metrics(first), collapse_measure, collapse_threshold)

# %% [markdown]
# Every round of iterative magnitude pruning is a run in the run store (cached by its config,
# which names the dense run, the round, the rates, the rewind epoch and whether the mask is the
# random control; resumable after a kill). Round 0 keeps every weight: it is the dense network
# retrained on the rounds' schedule, the reference a ticket's accuracy is compared with. Round *r*
# prunes round *r − 1*'s trained weights (round 1 prunes the dense network's). The networks only
# as deep as the layer of collapse are trained here too. With `executor="processes"` each seed's
# chain (its dense network, then its rounds in order) is one task of `jobs` worker processes, the
# shallow networks another, the task with the most work first; each run trains exactly as
# `train` would in this process.

# %%
chains = imp_chains(cfg, seeds, rounds, rate=rate, output_rate=output_rate, rewind=rewind_epoch,
                    epochs=round_epochs)
shallow_cfgs = [cfg.replace(seed=s, depth=collapse) for s in seeds] if collapse else []
if executor != "local":
    run_sweep([*(cfg.replace(seed=s) for s in seeds), *chains.values(), *shallow_cfgs], executor=executor,
              jobs=jobs, batched=True, device=device, data_root=data_dir)
parents = {s: train(cfg.replace(seed=s), device=device, data_root=data_dir) for s in seeds}
runs = {key: train(round_cfg, device=device, data_root=data_dir) for key, round_cfg in chains.items()}
trained = (train_batched(shallow_cfgs, device=device, data_root=data_dir) if len(shallow_cfgs) > 1 else
           [train(c, device=device, data_root=data_dir) for c in shallow_cfgs])
shallow = {c.seed: run for c, run in zip(shallow_cfgs, trained)}
train_seconds = time.perf_counter() - tic

# %%
tic = time.perf_counter()
dense_metrics = {s: final_metrics(run) for s, run in parents.items()}
dense_collapse = {s: collapse_layer(m, collapse_measure, collapse_threshold) for s, m in dense_metrics.items()}
measure_seconds = time.perf_counter() - tic

# %%
# NBVAL_CHECK_OUTPUT
print(f"{label}: layers 0..{layers - 1}; layer of collapse per seed: {dense_collapse}")

# %% [markdown]
# ## Rounds of iterative magnitude pruning
#
# Each round's mask, read back from its run folder: the share of every weight layer's weights it
# keeps.

# %%
density = T.density_table(runs)
tickets = density[density["family"] == "ticket"]

# %%
kept = tickets.pivot_table(index="round", columns="layer", values="density", aggfunc="mean")
keynumbers.record(out_dir, "06_lottery_tickets", "share",
                  **{f"round {r} density per layer": row.tolist() for r, row in kept.iterrows()})
print(f"share of weights kept per weight layer (mean over {len(seeds)} seed(s)); layer of collapse {collapse}")
print(kept.round(2).to_string())

# %% [markdown]
# The figure: the share of each layer's weights the ticket keeps after each round, on a log
# scale, with the layer of collapse dashed in green. Point *l* is the weight matrix that reads
# layer *l*'s features; the last point is the output layer, pruned at its own lower rate.

# %%
fig = plots.plot_ticket_density(tickets, collapse, f"IMP ticket density — {label}")
plots.save_figure(fig, "ch6_density", figures_dir)
plt.show()

# %% [markdown]
# ## Do the retrained tickets still collapse?
#
# NC1-4 per layer of each round's ticket, measured like any run (the masked weights are zeros in
# its checkpoints). The random controls are not measured here.

# %%
tic = time.perf_counter()
ticket_metrics = {key: final_metrics(run) for key, run in runs.items() if key[2] == "ticket"}
collapse_rows = [(s, "dense", -1, dense_collapse[s], last_layer_trace(dense_metrics[s])) for s in seeds]
collapse_rows += [(s, "ticket", r, collapse_layer(m, collapse_measure, collapse_threshold), last_layer_trace(m))
                  for (s, r, _), m in ticket_metrics.items()]
collapses = pd.DataFrame(collapse_rows, columns=["seed", "family", "round", "collapse_layer", "last_rel_trace"])
measure_seconds += time.perf_counter() - tic

# %%
# NBVAL_CHECK_OUTPUT
print(collapses.astype({"collapse_layer": "Int64"})[["seed", "family", "round", "collapse_layer"]].to_string(index=False))

# %%
print("last layer's relative within-class trace:", collapses["last_rel_trace"].round(3).tolist())

# %%
nc = pd.concat([dense_metrics[s].assign(network="dense") for s in seeds]
               + [m.assign(network=f"ticket, round {r}") for (s, r, _), m in ticket_metrics.items() if r > 0])
fig = plots.plot_ticket_nc1(nc, collapse, f"NC1 per layer, dense vs tickets — {label}")
plots.save_figure(fig, "ch6_nc1", figures_dir)
plt.show()

# %% [markdown]
# ## Accuracy against remaining parameters
#
# Test accuracy and nonzero parameters of every network: the dense networks, each round's ticket
# and random control, the dense network cut at the layer of collapse with chapter 5's ridge head
# (fitted in closed form on the training features, penalty = the weight decay), the ticket of every
# round cut at the same layer, and a network only as deep as the layer of collapse trained from
# scratch with the dense network's configuration. Multiply-adds count nonzero weights only.

# %%
def network_row(seed, family, rnd, run):
    model = load_model(run, run.config.epochs, device, train_set)
    acc = float(run.read_log()["test_acc"].iloc[-1])
    return {"seed": seed, "family": family, "round": rnd, "accuracy": acc,
            **T.nonzero_cost(model, train_set.in_shape)}


rows = []
for s in seeds:
    train_set, test_set = load_splits(cfg.replace(seed=s), device, data_dir)
    batches = (lambda: train_set.batches(1024)), (lambda: test_set.batches(1024))
    rows.append(network_row(s, "dense", -1, parents[s]))
    if collapse:
        rows.append({"seed": s, "family": "cut", "round": -1,
                     **T.cut_accuracy(load_model(parents[s], cfg.epochs, device, train_set), collapse, *batches,
                                      train_set.in_shape, cfg.weight_decay)})
        rows.append(network_row(s, "shallow", -1, shallow[s]))
    for (seed, r, family), run in runs.items():
        if seed != s:
            continue
        rows.append(network_row(s, family, r, run))
        if collapse and family == "ticket":
            model = load_model(run, round_epochs, device, train_set)
            rows.append({"seed": s, "family": "ticket cut", "round": r,
                         **T.cut_accuracy(model, collapse, *batches, train_set.in_shape, cfg.weight_decay)})
accuracy = pd.DataFrame(rows)

# %%
counts = accuracy.groupby(["family", "round"], sort=False)[["params", "macs"]].mean()
keynumbers.record(out_dir, "06_lottery_tickets", "measure",
                  **{f"{family} round {r} {kind}": counts.loc[(family, r), kind]
                     for family, r in counts.index for kind in ("params", "macs")})
print(f"nonzero parameters and multiply-adds per image, in thousands (mean over {len(seeds)} seed(s))")
print((counts / 1e3).round(0).astype(int).to_string())

# %%
keynumbers.record(out_dir, "06_lottery_tickets", "accuracy",
                  **{f"{r.family} round {r.round} seed {r.seed} test accuracy": r.accuracy for r in accuracy.itertuples()})
print(accuracy.pivot_table(index=["family", "round"], columns="seed", values="accuracy", sort=False).round(3).to_string())

# %%
plots.save_figure(plots.plot_ticket_accuracy(accuracy, f"Accuracy per parameter — {label}", len(test_set)), "ch6_accuracy",
                  figures_dir)
plt.show()

# %% [markdown]
# ## Time
#
# Wall time of this chapter's work in this session (cached runs take no time): training every
# network, and measuring the dense networks and the tickets. Timings depend on the machine and its
# load; the counts above do not.

# %%
print(f"training (the first dense network, then the other seeds' dense networks, the rounds and the shallow "
      f"networks with executor {executor!r}, {jobs} job(s)) {train_seconds:.0f} s, measuring the dense "
      f"networks and the tickets {measure_seconds:.0f} s; chapter {time.perf_counter() - started:.0f} s in all")

# %% [markdown]
# ## What this run shows: the claims table
#
# What thesis 1.3.1 and 5.5.2 state or conjecture, next to what this run measured, by the fixed
# rules of `inc_utils.claims.chapter6`: each effect is signed in the claimed direction and
# compared with a margin over noise (binomial standard errors of the test accuracies, the range
# over seeds). This table, not the prose above, is what this run shows; it is also saved for the
# book's index page.

# %%
claims = K.chapter6(accuracy, density, collapses, collapse, layers, len(test_set))
K.save(claims, "06_lottery_tickets", out_dir / "claims")
Markdown(K.to_markdown(claims))

# %%
# NBVAL_CHECK_OUTPUT
print(claims[["claim", "holds"]].to_string(index=False))

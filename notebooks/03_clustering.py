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
# # Chapter 3 — Clustering the activations of intermediate layers
#
# Companion to thesis section 4.3 and appendix C.2. Chapter 1 measured collapse with summary
# statistics. Here we look at the geometry directly: how do the training points arrange
# themselves in each layer before and after the layer of collapse?
#
# Two tools (thesis 3.4). **UMAP** draws each layer's activations in 2-D while keeping cosine
# neighbourhoods (20 neighbours). **Agglomerative clustering** with cosine distance and complete
# linkage, cut at distance 0.7, groups points without knowing the labels; each cluster of at
# least 3 points is then labelled by its majority class, smaller clusters are "excluded". If a
# layer's clusters are pure, its features already separate the classes. The hierarchical accuracy
# (eq. 4.1) asks whether each cluster of one layer lies inside a single cluster of the next, i.e.
# whether the network refines its partition layer by layer. The thesis reports that "the rate at
# which a cluster stays connected from one layer is significantly lower than 100%" before the
# collapse (4.3.3, Table 4.3.2: 19%, 48%, 50%, 81%) and 99.8% after it. Eq. 4.1 is high by chance
# alone when the next layer has few, large clusters, so we give each step its chance level: the
# mean of eq. 4.1 when the points are dealt to the next layer's clusters at random, cluster sizes
# kept. The appendix repeats the clustering with Euclidean distance and Ward linkage at threshold
# 0.5 and finds that "a change of metric is not hugely impactful" (C.2.2).

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
layers = None              # None: every layer, 0 (input) to the classifier's input
n_per_class = None         # analyse a balanced subset of the train set; None: all of it
subset_seed = 0
cosine_threshold = 0.7
ward_threshold = 0.5
min_cluster_size = 3
umap_neighbors = 20
umap_seed = 0
run_umap = True
collapse_measure = "rel_trace_w"
collapse_threshold = 0.2
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
from inc_utils import clustering as CL
from inc_utils import metrics as M
from inc_utils import plots
from inc_utils import session
from inc_utils.activations import run_activations
from inc_utils.config import from_dict
from inc_utils.measure import measure_run
from inc_utils.models import num_layers
from inc_utils.train import train

globals().update(session.setup("03_clustering", globals()))  # scale, folders, threads, device, data
cfg = from_dict(experiment)
label = f"{cfg.arch.upper()}-{cfg.depth} on {cfg.dataset}"
layers = list(range(num_layers(cfg.arch, cfg.depth))) if layers is None else list(layers)

# %% [markdown]
# ## The network and its layer of collapse
# Trained (or loaded from the run cache) exactly as in chapter 1; the collapse layer comes from
# the NC measures of its last checkpoint.

# %%
# NBVAL_CHECK_OUTPUT
run = train(cfg, device=device, data_root=data_dir)
metrics, _ = measure_run(run, epochs=[cfg.epochs], device=device, data_root=data_dir)
collapse = M.collapse_layer(metrics, collapse_measure, collapse_threshold)
acts, y, predicted = run_activations(run, layers, n_per_class=n_per_class, subset_seed=subset_seed,
                                     device=device, data_root=data_dir)
print(f"{label}: collapse at layer {collapse}; {len(y)} training points, layers {layers}")
print("feature dimensions:", {layer: a.shape[1] for layer, a in acts.items()})

# %% [markdown]
# ## Cosine clustering (thesis 4.3.2, Tables 4.3.1 and 4.3.2)

# %%
cos_clusters = CL.cluster_layers(acts, "cosine", "complete", cosine_threshold)
table = CL.clustering_table(cos_clusters, y, min_cluster_size)
table["collapsed"] = table.layer >= collapse if collapse is not None else False
print(table.round(3).to_string(index=False))

# %% [markdown]
# Why a collapsed layer can still give mixed clusters. After a ReLU every feature is non-negative,
# so all points share a large common component (the global mean) and the cosine between two
# class means can be well above 0. Complete linkage cut at cosine distance 0.7 keeps two tight
# classes apart only if their means' cosine similarity is below 1 − 0.7 = 0.3; when it is above,
# the cut puts both classes into one cluster however well each has collapsed. The thesis clusters
# the raw activations (3.4.2; mean-centring is listed among the variants it tried in its search).
# The table gives, per layer, the largest cosine similarity between two class means, raw and after
# subtracting the global mean; the purity claim below leaves out the layers where the raw value is
# at or above 1 − `cosine_threshold`, and says which.

# %%
mean_similarity = {layer: CL.class_mean_similarity(a, y) for layer, a in acts.items()}
print(pd.DataFrame({"layer": list(acts), "class_means_cosine": list(mean_similarity.values()),
                    "centred": [CL.class_mean_similarity(a, y, centre=True) for a in acts.values()]}
                   ).round(2).to_string(index=False))

# %% [markdown]
# Hierarchical accuracy (eq. 4.1) between consecutive layers, its chance level (`chance`, mean
# over 20 size-preserving shuffles, and their spread `chance_std`), and the share of the room
# above chance that is nested, `nesting` = (H − chance) / (1 − chance): 0 at chance, 1 when every
# cluster lies inside one cluster of the next layer.

# %%
hierarchy = CL.hierarchy_table(cos_clusters)
nested = K.chapter3_nesting(hierarchy, len(y))
print(nested.round(2).to_string(index=False))

# %% [markdown]
# Cluster-by-class matrices (thesis Fig 4.3.2): one row per kept cluster, ordered by its majority
# label and then by size, coloured by the share of its points in each class. The thesis finds many
# small, mixed clusters before collapse and about one pure cluster per class after it; the table
# above gives this run's numbers.
#
# Figures of this chapter and the thesis figures they correspond to (one panel per layer,
# collapsed layers titled in green):
#
# | file | thesis | what it shows |
# |---|---|---|
# | `ch3_cluster_matrices` | 4.3.2 | cosine/complete clusters by class |
# | `ch3_umap_class_true` | 4.3.1, C.2.3 | UMAP coloured by true class |
# | `ch3_umap_class_induced` | C.2.4 (upper) | UMAP coloured by the label the cosine clustering induces |
# | `ch3_umap_error_induced-label` | C.2.4 (lower) | where that induced label is wrong |
# | `ch3_cluster_matrices_ward` | C.2.5 | Euclidean/Ward clusters by class |
# | `ch3_umap_ward_induced`, `ch3_umap_ward_errors` | C.2.6 (upper, lower) | the same two views for the Ward clustering |
#
# Not reproduced as in the thesis: the thesis shows a sample of layers in 4.3.1 and 4.3.2 and all
# of them in the appendix; here every analysed layer is drawn in one figure. Layers with more than
# 200 kept clusters show their 200 largest. A layer without any cluster of at least
# `min_cluster_size` points has an empty panel that says so.

# %%
matrices = {layer: CL.cluster_class_matrix(c, y, min_cluster_size) for layer, c in cos_clusters.items()}
plots.save_figure(plots.plot_cluster_matrices(matrices, f"Cosine clusters by class — {label}", collapse,
                                              min_size=min_cluster_size), "ch3_cluster_matrices", figures_dir)
plt.show()

# %% [markdown]
# ## UMAP of every layer (thesis Fig 4.3.1, C.2.3, C.2.4)
# Coloured by true class, by the label the cosine clustering induces (grey: excluded points), and
# by where the induced label is wrong. The neighbour graph comes from the faster search for the
# device: on a GPU an exact one (one matrix product per block), on a CPU umap-learn's own.

# %%
if run_umap:
    embeddings = {layer: CL.umap_embedding(a, umap_neighbors, umap_seed, device=device)
                  for layer, a in acts.items()}
    induced = {layer: CL.label_clusters(c, y, min_cluster_size).point_labels for layer, c in cos_clusters.items()}
    for name, colors, kind in (("true class", y, "class"), ("induced label", induced, "class"),
                               ("induced-label errors", induced, "error")):
        fig = plots.plot_umap(embeddings, colors, f"UMAP by {name} — {label}", collapse, kind, truth=y)
        plots.save_figure(fig, f"ch3_umap_{kind}_{name.split()[0]}", figures_dir)
        plt.show()

# %% [markdown]
# ## Euclidean distance with Ward linkage (appendix C.2.2, Tables C.2.1 and C.2.2)
# The appendix repeats the clustering with Euclidean distance, Ward linkage and threshold 0.5, on
# the same activations, and finds that the change of metric does not change the results much. The
# thesis uses scikit-learn's `AgglomerativeClustering` (3.4.2), whose Ward distance between
# clusters $a$ and $b$ is $\sqrt{2 n_a n_b / (n_a + n_b)}\,\lVert \bar x_a - \bar x_b \rVert$ (not
# squared; two single points merge at their Euclidean distance); we cut the same tree. A dash marks
# a layer where every point is excluded (as layer 0 in Table C.2.1).

# %%
ward_trees = {layer: CL.linkage_tree(a, "euclidean", "ward") for layer, a in acts.items()}
ward_clusters = {layer: CL.flat_clusters(Z, ward_threshold) for layer, Z in ward_trees.items()}
print(CL.clustering_table(ward_clusters, y, min_cluster_size).round(3).to_string(index=False, na_rep="-"))
print(CL.hierarchy_table(ward_clusters).round(3).to_string(index=False))

# %% [markdown]
# How far the two clusterings agree, layer by layer: the adjusted Rand index (1: the same
# partition, 0: no more alike than chance), against the same index after shuffling the Ward
# labels with cluster sizes kept.

# %%
agreement = pd.DataFrame([dict(zip(("ari", "chance", "chance_std"), CL.clustering_agreement(cos_clusters[layer],
                                                                                            ward_clusters[layer])),
                               layer=layer) for layer in cos_clusters])[["layer", "ari", "chance", "chance_std"]]
print(agreement.round(2).to_string(index=False))

# %% [markdown]
# Unlike the cosine threshold, 0.5 is a length in the units of the activations, and Ward
# distances grow with the square root of cluster size, so the same threshold cuts coarsely in a
# layer with small activations and finely in one with large activations. The thesis notes that in
# its network the non-zero activations "shift downwards by about half an order of magnitude per
# layer" before collapse (4.4.4). Our reading of Table C.2.1 is that it follows this scale: all
# 50,000 pixel vectors are excluded at layer 0, and the average Ward cluster grows from 4.4 to 121
# to 1,667 points over layers 1-3 (a tenfold step is what a $10^{0.5}$ shrink gives when heights
# scale as $\sqrt{n}$), while the scale-free cosine clusters of Table 4.3.1 stay at 4-5 points.
# A network whose activations keep one scale across layers gets a cut of the same fineness in
# every layer, so the threshold does not carry over between networks. The table below gives each
# layer's scale (root-mean-square norm), the number of clusters of any size the cut at the
# threshold leaves, and the range of thresholds that would cut that layer's Ward tree into exactly
# one cluster per class.

# %%
print(CL.ward_scale_table(acts, ward_trees, ward_threshold, len(set(y))).round(3).to_string(index=False))

# %%
matrices = {layer: CL.cluster_class_matrix(c, y, min_cluster_size) for layer, c in ward_clusters.items()}
plots.save_figure(plots.plot_cluster_matrices(matrices, f"Ward clusters by class — {label}", collapse,
                                              min_size=min_cluster_size), "ch3_cluster_matrices_ward", figures_dir)
plt.show()
if run_umap:
    ward_induced = {layer: CL.label_clusters(c, y, min_cluster_size).point_labels
                    for layer, c in ward_clusters.items()}
    for name, kind in (("induced", "class"), ("errors", "error")):
        title = f"UMAP by Ward-induced label{' errors' * (kind == 'error')} — {label}"
        plots.save_figure(plots.plot_umap(embeddings, ward_induced, title, collapse, kind, truth=y),
                          f"ch3_umap_ward_{name}", figures_dir)
        plt.show()

# %% [markdown]
# ## What this run shows: the claims table
#
# The prose of this chapter states what the thesis reports (section 4.3); first, this run's Tables
# 4.3.1 and 4.3.2 beside the thesis's (MLP-10 on CIFAR10, 50,000 points: a different network and
# dataset, so compare the trends, not the values). Each row is a claim of the thesis, the number
# this run measured (`effect`, signed so that positive is the thesis's direction), what noise or
# chance alone gives (`margin`, with its basis), and the verdict of the one rule of
# `inc_utils.claims`: **yes** when the effect exceeds the margin, **no** when it is below minus the
# margin, otherwise "not measurable at this scale". The rules' constants are named at the top of
# `inc_utils.claims.chapter3`. This table, not the prose above, is what this run shows; it is also
# saved for the book's index page.

# %%
side_431, side_432 = K.thesis_tables_4_3(table, hierarchy)
print(side_431.round(3).to_string(index=False), side_432.round(2).to_string(index=False), sep="\n\n")

# %%
claims = pd.concat([K.chapter3(table, hierarchy, collapse, mean_similarity, cosine_threshold),
                    K.chapter3_agreement(agreement)], ignore_index=True)
K.save(claims, "03_clustering", out_dir / "claims")
Markdown(K.to_markdown(claims))

# %%
print(claims[["claim", "holds"]].to_string(index=False))

# %% [markdown]
# ## Export
# Both clusterings as one tidy table: one row per layer and method.

# %%
pd.concat([CL.clustering_table(cos_clusters, y, min_cluster_size).assign(method="cosine/complete"),
           CL.clustering_table(ward_clusters, y, min_cluster_size).assign(method="euclidean/ward")])

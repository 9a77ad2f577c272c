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
# # Chapter 4 — PCA and sparsity of the activations
#
# Companion to thesis section 4.4 and appendix C.2. If the features after the collapse layer are
# essentially C points, how many dimensions do the layers really use, and are the directions
# they use aligned with individual neurons?
#
# Three measurements per hidden layer (thesis 3.5):
# * **PCA spectrum**: the eigenvalues of the activation covariance, drawn as the share of
#   variance *not* explained by the first k components; we mark where it drops below 1%.
# * **ℓ1 sparsity of the principal directions**: a unit vector u in d dimensions has ‖u‖₁ = 1 if it
#   is one neuron and √d if it is spread evenly. π‖u‖₁²/2 turns this into a "corresponding
#   dimensionality" (3.5.2): for a random unit vector in d dimensions its mean is exactly
#   d − 1 + π/2 and its spread about √(2(π − 3)d) (d = 256: 256.6 ± 8.5), the band every principal
#   direction is compared with. The thesis takes "the SVD of the data itself" (3.5.1, footnote 3);
#   of uncentred data its leading direction is close to the global mean, which the thesis reads as
#   a bias (4.4.2: "biased away from the neuron-axes").
# * **Neuron sparsity**: the share of training points for which a neuron is exactly zero after the
#   ReLU, neurons sorted by it, with the mean and spread of each neuron's non-zero values.

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
layers = None              # None: every hidden layer (1 to the classifier's input)
n_per_class = None         # analyse a balanced subset of the train set; None: all of it
subset_seed = 0
variance_level = 0.01
bootstrap_draws = 20       # resamples of the training points for the noise of the component counts
collapse_measure = "rel_trace_w"
collapse_threshold = 0.2
device = "auto"
data_dir = None
scale = None               # a name under params/ (smoke, colab, paper, ...): its values replace those above
download = None            # fetch missing torchvision datasets; None: in Colab only
drive_folder = None        # Colab: keep runs in this Google Drive folder, to resume after a dropped session

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown

from inc_utils import claims as K
from inc_utils import metrics as M
from inc_utils import plots
from inc_utils import session
from inc_utils import spectra as SP
from inc_utils.activations import run_activations
from inc_utils.config import from_dict
from inc_utils.measure import measure_run
from inc_utils.models import num_layers
from inc_utils.train import train

globals().update(session.setup("04_pca_sparsity", globals()))  # scale, folders, threads, device, data
cfg = from_dict(experiment)
label = f"{cfg.arch.upper()}-{cfg.depth} on {cfg.dataset}"
layers = list(range(1, num_layers(cfg.arch, cfg.depth))) if layers is None else list(layers)

# %%
# NBVAL_CHECK_OUTPUT
run = train(cfg, device=device, data_root=data_dir)
metrics, _ = measure_run(run, epochs=[cfg.epochs], device=device, data_root=data_dir)
collapse = M.collapse_layer(metrics, collapse_measure, collapse_threshold)
acts, y, _ = run_activations(run, layers, n_per_class=n_per_class, subset_seed=subset_seed,
                             device=device, data_root=data_dir)
print(f"{label}: collapse at layer {collapse}; {len(y)} training points, hidden layers {layers}")

# %% [markdown]
# ## PCA spectra (thesis Fig 4.4.1, C.2.7)
# The thesis: "pre-collapse, layer 1-3, there are no significantly different regimes"; "a clear
# shift in layer 4 and deeper"; "after the collapse, the data occupies a significantly smaller
# space than the full 1024-dimensional space" (4.4.1). The count printed below the figure is this
# run's; its claim row compares the drop at the collapse with the per-layer change before it (what
# depth alone gives), against a bootstrap over the training points.
#
# Figures of this chapter and the thesis figures they correspond to:
#
# | file | thesis | what it shows |
# |---|---|---|
# | `ch4_pca` | 4.4.1 (a) and (b); C.2.7–C.2.8 (upper) | (a) eigenvalues of each layer's activation covariance, (b) 1 − cumulative explained variance, where it passes `variance_level` marked |
# | `ch4_l1` | 4.4.2; C.2.7–C.2.8 (lower) | corresponding dimensionality π‖u‖₁²/2 of every principal direction per layer, against a random orthonormal matrix and the random-direction band; the leading uncentred direction starred |
# | `ch4_neurons` | 4.4.3, 4.4.4; C.2.9–C.2.10 | per layer: neurons sorted by sparsity (steps k/C dotted), and the mean ± std of their non-zero activations on a log axis |
#
# Not reproduced as in the thesis: the spectra of all layers share the two panels of `ch4_pca`
# instead of one panel per layer (C.2.7–C.2.8, upper); `ch4_l1` draws the corresponding
# dimensionality only, not the ℓ1 norm on a second axis (one is a monotone function of the
# other); the means of non-zero activations are drawn as a line with a ±1 std band instead of dots
# with bars.

# %%
spectrum = SP.spectrum_table(acts)
plots.save_figure(plots.plot_pca(spectrum, f"PCA of the activations — {label}", collapse, variance_level),
                  "ch4_pca", figures_dir)
plt.show()

# %%
components = {layer: SP.components_to(spectrum[spectrum.layer == layer].eigenvalue.to_numpy(), variance_level)
              for layer in layers}
component_draws = {layer: SP.components_bootstrap(a, variance_level, bootstrap_draws) for layer, a in acts.items()}
print(f"components needed to leave less than {variance_level:g} of the variance:", components)

# %% [markdown]
# ## ℓ1 sparsity of the principal directions (thesis Fig 4.4.2, C.2.8)
# The thesis: before the collapse "the principal components except the (last and least
# significant ones) all have a corresponding dimensionality ~ 1024"; after it "there are several
# subspaces that are preferred by different magnitudes of singular vectors", e.g. in layer 6 a
# plateau "from principal component 150 to 850" read as "up to 700-dimensional" and one from 850
# to 1000 as "up to 120-dimensional" (4.4.2). Every component is drawn, so plateaus in the tail
# show; the grey band is a random unit direction's mean ± 2 std, and the star is the leading
# direction of the uncentred data.

# %%
leading = SP.leading_direction_table(acts)
plots.save_figure(plots.plot_l1_dimensionality(spectrum, f"Corresponding dimensionality — {label}", collapse,
                                               leading=leading), "ch4_l1", figures_dir)
plt.show()

# %% [markdown]
# ## Neuron sparsity and non-zero activations (thesis Figs 4.4.3-4.4.4, C.2.9-C.2.10)
# The thesis: before the collapse the neurons' sparsities "are all distributed continuously and
# tightly around approximately 0.6"; after it "we find patterns of extreme sparsity and extreme
# non-sparsity" (4.4.3); "there is clear step-wise sparsity with steps at the 1/10-marks", from
# "the 10 class means forming essentially only 10 sets of internally equivalent datapoints" (C.2.4);
# and before the collapse the non-zero activations "shift downwards by about half an order of
# magnitude per layer" (4.4.4), hence the log axis.

# %%
neurons = SP.neuron_table(acts)
num_classes = len(set(y.tolist()))
plots.save_figure(plots.plot_neuron_sparsity(neurons, f"Neurons sorted by sparsity — {label}", collapse,
                                             num_classes), "ch4_neurons", figures_dir)
plt.show()

# %%
per_layer = neurons.groupby("layer").agg(mean_sparsity=("sparsity", "mean"),
                                          dead_neurons=("sparsity", lambda s: int((s == 1).sum())),
                                          always_on=("sparsity", lambda s: int((s == 0).sum())),
                                          median_nonzero=("mean", "median"))
mean_dim = spectrum.groupby("layer").corresponding_dim.mean().rename("corr_dim_all")
print(per_layer.join(mean_dim).join(leading.set_index("layer")[["leading_dim"]]).round(2).to_string())

# %% [markdown]
# ## What this run shows: the claims table
#
# The prose of this chapter states what the thesis reports (section 4.4). Each row is a claim of the
# thesis, what this run measured (`effect`, signed so that positive is the thesis's direction),
# what noise or chance alone gives (`margin`, with its basis), and the verdict of the one rule of
# `inc_utils.claims`: **yes** when the effect exceeds the margin, **no** when it is below minus the
# margin, otherwise "not measurable at this scale". The rules' constants are named at the top of
# `inc_utils.claims.chapter4`. This table, not the prose above, is what this run shows; it is also
# saved for the book's index page.

# %%
claims = K.chapter4(components, component_draws, spectrum, leading, neurons, collapse, num_classes)
K.save(claims, "04_pca_sparsity", out_dir / "claims")
Markdown(K.to_markdown(claims))

# %%
# NBVAL_CHECK_OUTPUT
print(claims[["claim", "holds"]].to_string(index=False))

# %% [markdown]
# ## Export
# `spectrum` (one row per layer and component) and `neurons` (one row per layer and neuron) are
# tidy tables: `spectrum.to_csv(...)`.

# %%
spectrum.head()

"""Neural-collapse measures of every probe point (thesis 2.3.3-2.3.4).

Notation, per layer and split: features h_i (flattened, ``H: (B, d)``), labels
``y: (B,) int in [0, C)``, class counts n_c, class means μ_c, the global mean
μ_G = Σ_c n_c μ_c / N (the mean of all samples; it equals the mean of the class means only
for balanced sets, and SVHN is not balanced), centred means μ̃_c = μ_c − μ_G stacked as rows
of ``centred: (C, d)`` (the thesis's M is its transpose), and

    Σ_W = 1/N Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ,    Σ_B = 1/C Σ_c μ̃_c μ̃_cᵀ.

Streaming in two passes over the data (``measure_model``), all sums in float64 on the model's
device, memory O(C·d) per layer, never O(N·d) and never a d x d matrix:

1. class sums and counts -> μ_c, μ_G, μ̃_c, all relative to the mean of the first batch, so
   that an offset shared by all features (large against the class means' spread, as in
   networks without normalisation) adds no rounding;
2. with the thin SVD μ̃ = A diag(s) Uᵀ (U: (d, r), the between-class directions; r ≤ C − 1
   since the n_c-weighted μ̃_c sum to zero, and directions below the rounding floor of the raw
   means are dropped), the within-class deviations h_i − μ_{y_i}: their squared norms per class
   (Tr Σ_W, Var_c) and their squared projections on U (u_kᵀ Σ_W u_k), plus the
   nearest-class-centre predictions with the train means.

NC1 then needs no pseudo-inverse of a d x d matrix: Σ_B = U diag(s²/C) Uᵀ, so
Σ_B⁺ = U diag(C/s²) Uᵀ on its rank-r range and

    NC1 = Tr(Σ_W Σ_B⁺)/C = Σ_k u_kᵀ Σ_W u_k / s_k².

Deviations from the exact means (rather than E[hhᵀ] − μμᵀ) keep near-collapsed layers, whose
within-class spread is tiny against the means, accurate to float64 rounding.

The measures of the table, by name, are in ``MEASURES``; ``weight_spectra`` gives the NC3
relative singular values, which depend on the weights only, as a second tidy table.

Where the definitions differ from the thesis's text or the authors' code, and by how much on
small cases: an MLP-4 (width 64), a ConvNet-3 (16 channels) and a ConvNet-6 (32 channels)
trained 300 full-batch steps on scikit-learn digits (141-146 samples per class), and the MLP on
a subset with SVHN's class proportions (47-140 per class); C = 10.

=====================  ==========================  ===============================  ============================
quantity               here                        thesis text / authors' code      size of the difference
=====================  ==========================  ===============================  ============================
AvCosPABS average      mean over the r principal   eq 2.25 divides by C             exactly (C−1)/C of ours for
                       angles, r = min(C, rank of                                   a Linear: capped at 0.9
                       the centred means)
NC3 class-mean span    centred means (the          raw means (the earlier code,     MLP: 0.002-0.054 (raw lower
                       thesis's M)                 ``centered_means=False``)        on 4 of 5 layers); ConvNet:
                                                                                    0.007, 0.056
conv NC3 positions     flattened: top C of the     ``positions="average"``: the     ConvNet-3: 0.882 vs 0.888,
                       (in x C·h·w) centred means  spatial mean of each channel     0.811 vs 0.814; ConvNet-6
                       (thesis 2.3.4.1, the        (this project before)            (32 channels): 0.005-0.035
                       authors' code)                                               either way, up to 7.6%
Σ_W                    weighted by sample, 1/N Σ_i the authors' code: mean of the   small if balanced (digits: NC1
                                                   class covariances, 1/C Σ_c       0.02-0.4% lower theirs);
                                                                                    SVHN-like: 4-13% lower
μ_G                    sample mean                 written for balanced classes     SVHN-like: NC1 1.2-2.5%
                                                   (2.3.2), where it is the mean    higher with the mean of the
                                                   of the class means               class means
NC2 standard           population (ddof 0)         the authors' plots: ddof 1       theirs larger by √(n/(n−1)):
deviations                                                                          1.011 for the 45 pairs (1.006
                                                                                    over 90 ordered), 1.054 for
                                                                                    the 10 norms
relative trace         Tr Σ_W / (Tr Σ_W + Tr Σ_B)  4.1.1 writes Tr[Σ_B/Σ_T] < 0.2   Tr Σ_W / Tr Σ_T, Σ_T the
                                                   (garbled: that ratio → 1)        total covariance: same if
                                                                                    balanced (digits ≤ 2e-4);
                                                                                    SVHN-like 0.009-0.016 higher
layer of collapse      ``rule="stays"``: below     4.1.1: "the earliest layer"      the same while the measure
                       from there to the last      below (``rule="first"``)         falls with depth; later by
                       layer                                                        any dip before a rise
=====================  ==========================  ===============================  ============================
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import scipy.linalg
import torch
from torch import nn

from .capture import Batches, channel_dim, flat_view, is_reiterable, model_device, stream_features
from .models import ProbePoint, probe_points

TRACE_W = "trace_w"
TRACE_B = "trace_b"
REL_TRACE_W = "rel_trace_w"
NC1 = "nc1"
CDNV = "cdnv"
NC2_COS_MEAN = "nc2_cos_mean"
NC2_COS_STD = "nc2_cos_std"
NC2_NORM_CV = "nc2_norm_cv"
NC3_AVCOS = "nc3_avcos"
NCC_ACC = "ncc_acc"
NCC_AGREE = "ncc_agree"
#: The whole network's accuracy, in rows with layer -1 and name "network" (counted in pass 2).
NET_ACC = "net_acc"

#: Every measure of the ``measure_model`` table, in table order, with a one-line description.
MEASURES: dict[str, str] = {
    TRACE_W: "Tr Σ_W, total within-class variance",
    TRACE_B: "Tr Σ_B = Σ_c ‖μ̃_c‖² / C, between-class variance",
    REL_TRACE_W: "Tr Σ_W / (Tr Σ_W + Tr Σ_B), relative within-class trace (collapse below 0.2, thesis 4.1.1)",
    NC1: "Tr(Σ_W Σ_B⁺)/C with Σ_B⁺ on its rank C−1 range (eq 2.18) -> 0",
    CDNV: "mean over c≠c' of (Var_c + Var_c') / (2‖μ_c − μ_c'‖²), class-distance normalised variance -> 0",
    NC2_COS_MEAN: "mean over c<c' of cos(μ̃_c, μ̃_c') + 1/(C−1) (eq 2.19) -> 0",
    NC2_COS_STD: "std (population) over c<c' of cos(μ̃_c, μ̃_c') (eq 2.20) -> 0",
    NC2_NORM_CV: "std (population) / mean over c of ‖μ̃_c‖ (eq 2.21) -> 0",
    NC3_AVCOS: "AvCosPABS: mean cosine of the principal angles between the top-C right singular "
               "vectors of the weight and the top-C centred class-mean span, conv positions "
               "flattened (eq 2.25-2.26, 2.3.4.1) -> 1",
    NCC_ACC: "accuracy of the nearest-train-class-mean classifier (NC4) -> network accuracy",
    NCC_AGREE: "share of samples where the nearest-train-class-mean class equals the network's argmax (eq 2.17) -> 1",
}
COLUMNS = ("split", "layer", "name", "measure", "value")
#: How a conv layer's positions enter NC3's class-mean span, the default first (``nc3_mean_basis``).
NC3_POSITIONS = ("flatten", "average")


# ---------------------------------------------------------------- pure functions of statistics
def centre(means: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Class means (C, d) and counts (C,) -> centred means μ_c − μ_G (C, d), μ_G sample-weighted."""
    return means - (counts @ means) / counts.sum()


def span_basis(rows: torch.Tensor, max_rank: int, scale: float | torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal basis U (d, r) of the top directions of the span of ``rows`` (n, d), and their singular values s (r,).

    Keeps at most ``max_rank`` directions, and of those only the ones with
    s_k > max(n, d) · eps · ``scale``: NumPy's ``matrix_rank`` rule, with ``scale`` the size of
    the numbers ``rows`` were computed from (default: s_1 of ``rows`` itself). Centred means
    are differences of raw means, so their rounding noise is eps times the raw means, not
    eps times their own size: pass s_1 of the raw means.
    """
    _, s, vh = torch.linalg.svd(rows, full_matrices=False)
    scale = s[0] if scale is None else scale
    keep = (s > max(rows.shape) * torch.finfo(rows.dtype).eps * scale)[:max_rank]
    return vh[: len(keep)][keep].T, s[: len(keep)][keep]


def between_class_basis(means: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U (d, r), s (r,) of ``span_basis`` for the centred means of ``means`` (C, d): r ≤ C − 1.

    The centred means sum to zero with weights n_c, so their exact rank is at most C − 1; the
    C-th direction, and any below the rounding floor of the raw means, is noise and dropped.
    """
    return span_basis(centre(means, counts), len(means) - 1, torch.linalg.matrix_norm(means, 2))


def trace_within(sq_dev: torch.Tensor, counts: torch.Tensor) -> float:
    """Tr Σ_W from sq_dev (C,) = Σ_{i in c} ‖h_i − μ_c‖² and counts (C,)."""
    return (sq_dev.sum() / counts.sum()).item()


def trace_between(centred: torch.Tensor) -> float:
    """Tr Σ_B = Σ_c ‖μ̃_c‖² / C for centred means (C, d)."""
    return (centred.square().sum() / centred.shape[0]).item()


def nc1(within_proj: torch.Tensor, s: torch.Tensor) -> float:
    """NC1 = Tr(Σ_W Σ_B⁺)/C = Σ_k u_kᵀ Σ_W u_k / s_k².

    within_proj (r,): u_kᵀ Σ_W u_k on the between-class directions u_k of ``between_class_basis``;
    s (r,): the singular values of the centred means that go with them.
    """
    return (within_proj / s.square()).sum().item()


def cdnv(means: torch.Tensor, variances: torch.Tensor) -> float:
    """Mean over c≠c' of (Var_c + Var_c') / (2‖μ_c − μ_c'‖²); means (C, d), Var_c (C,) = mean ‖h − μ_c‖² in c."""
    i, j = torch.triu_indices(len(means), len(means), offset=1, device=means.device)
    dist2 = (means[i] - means[j]).square().sum(1)
    return ((variances[i] + variances[j]) / (2 * dist2)).mean().item()


def _pair_cosines(centred: torch.Tensor) -> torch.Tensor:
    """cos(μ̃_c, μ̃_c') for all pairs c < c', (C(C−1)/2,)."""
    unit = centred / centred.norm(dim=1, keepdim=True)
    i, j = torch.triu_indices(len(unit), len(unit), offset=1, device=unit.device)
    return (unit[i] * unit[j]).sum(1)


def nc2_cos_mean(centred: torch.Tensor) -> float:
    """Mean pairwise cosine of the centred means plus 1/(C−1): 0 at a simplex ETF (eq 2.19)."""
    return (_pair_cosines(centred).mean() + 1 / (len(centred) - 1)).item()


def nc2_cos_std(centred: torch.Tensor) -> float:
    """Population std of the pairwise cosines of the centred means (eq 2.20)."""
    return _pair_cosines(centred).std(correction=0).item()


def nc2_norm_cv(centred: torch.Tensor) -> float:
    """Population std / mean of the norms ‖μ̃_c‖ (eq 2.21)."""
    norms = centred.norm(dim=1)
    return (norms.std(correction=0) / norms.mean()).item()


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A Linear (out, in) or conv (out, in, *k) weight as a matrix (out·prod(k), in), columns = input channels."""
    return weight.movedim(1, -1).reshape(-1, weight.shape[1])


def relative_singular_values(weight: torch.Tensor) -> torch.Tensor:
    """σ_i / Σ_j σ_j of ``weight_matrix(weight)``, descending (eq 2.23); NC3 wants 1/C for i ≤ C, 0 beyond."""
    s = torch.linalg.svdvals(weight_matrix(weight).double())
    return s / s.sum()


def top_right_singular_vectors(weight: torch.Tensor, k: int) -> torch.Tensor:
    """(in, min(k, rank bound)) orthonormal top-k right singular vectors of ``weight_matrix(weight)``.

    Computed in float64 on the CPU from a subset eigendecomposition (LAPACK syevr) of the
    smaller Gram matrix, several times faster than a full SVD of a 1024 x 1024 weight; for a
    wide matrix (out < in) the top left vectors u_i give v_i ∝ Wᵀu_i, orthonormalised by QR.
    """
    W = weight_matrix(weight).detach().double().cpu().numpy()
    wide = W.shape[0] < W.shape[1]
    gram = W @ W.T if wide else W.T @ W
    n = len(gram)
    _, vecs = scipy.linalg.eigh(gram, subset_by_index=[n - min(k, n), n - 1])
    if wide:
        vecs = np.linalg.qr(W.T @ vecs)[0]
    return torch.from_numpy(vecs).to(weight.device)


def nc3_mean_basis(means: torch.Tensor, counts: torch.Tensor, *, centered_means: bool = True,
                   positions: str = "flatten") -> torch.Tensor:
    """Orthonormal basis Q_M (in, r) of the class-mean span that AvCosPABS compares with the weight.

    means (C, in, *positions): class means with the input channel at dim 1 (a Linear's are
    (C, in), one position); counts (C,). The span is that of the centred means by default
    (the thesis's M) or of the raw means (the authors' earlier code). ``positions`` says how
    the P positions of a conv layer's means enter:

    - "flatten" (thesis 2.3.4.1, "flatten the features ... along the dimensions which are not
      the input channels"): every position of every class mean is a column of M (in x C·P),
      and Q_M holds its top C left singular vectors, as in the authors' code;
    - "average": the span of the means averaged over positions (C, in), each channel's spatial
      mean (this project's definition before the thesis's).

    Either way r ≤ C, and r ≤ the rank the centred means can have: C − 1 for a Linear, whose
    centred means sum to zero with weights n_c, and for "average"; (C − 1)·P for "flatten".
    Directions below the rounding floor of the raw means are dropped (``span_basis``).
    """
    if positions not in NC3_POSITIONS:
        raise ValueError(f"positions must be one of {NC3_POSITIONS}, not {positions!r}")
    C, n_in = means.shape[:2]
    raw = means.reshape(C, n_in, -1)  # (C, in, P)
    rows = centre(raw.flatten(1), counts).view_as(raw) if centered_means else raw
    if positions == "average":
        raw, rows = raw.mean(2), rows.mean(2)
    else:  # (C·P, in): one row per class and position
        raw, rows = (x.transpose(1, 2).reshape(-1, n_in) for x in (raw, rows))
    per_class = len(rows) // C  # P rows per class, or 1 after averaging
    rank_bound = (C - 1) * per_class if centered_means else C
    basis, _ = span_basis(rows, min(C, rank_bound), torch.linalg.matrix_norm(raw, 2))
    return basis


def avcos_pabs(weight_vectors: torch.Tensor, mean_basis: torch.Tensor) -> float:
    """AvCosPABS (eq 2.25-2.26): the mean cosine of the principal angles between two subspaces.

    weight_vectors (in, C): the top-C right singular vectors of the weight
    (``top_right_singular_vectors``); mean_basis (in, r): ``nc3_mean_basis``. The cosines are
    the singular values of V_Cᵀ Q_M, min(C, r) of them, and their mean is 1 exactly when the
    smaller space lies inside the other: for a Linear's centred means (r = C − 1), whether the
    weight has rank C or C − 1 (as the last layers reach, thesis 4.1.2); for r = C, when the
    two C-dimensional spaces coincide.
    """
    return torch.linalg.svdvals(weight_vectors.to(mean_basis).T @ mean_basis).mean().item()


# ---------------------------------------------------------------- streaming accumulation
class LayerAccumulator:
    """Two-pass float64 statistics of one layer on one split, on the device of its features.

    Pass 1: ``add_means(H, y)`` for every batch, then ``end_means(ncc_means)``.
    Pass 2: ``add_deviations(H, y, net_pred)`` for every batch, then ``measures()``.
    ``H`` may be (B, *shape); it is flattened to (B, d) and cast to float64.

    Every statistic is taken relative to ``shift``, the mean of the first batch: h − shift is
    exact in float64 (Sterbenz) and of the size of the data's spread, so an offset common to
    all features, however large against that spread, adds no rounding to the class means.
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.shape: torch.Size | None = None

    def add_means(self, H: torch.Tensor, y: torch.Tensor) -> None:
        if self.shape is None:
            self.shape = H.shape[1:]
            self.shift = flat_view(H).double().mean(0)
            self.sums = self.shift.new_zeros(self.num_classes, len(self.shift))
            self.counts = self.shift.new_zeros(self.num_classes)
        self.sums.addmm_(self._one_hot(y).T, self._shifted(H))
        self.counts += torch.bincount(y, minlength=self.num_classes)

    def end_means(self, ncc_means: torch.Tensor | None = None) -> None:
        """Fix the class means; NCC uses ``ncc_means`` (C, d) (train means on a test split), default these."""
        if self.shape is None or (self.counts == 0).any():
            raise ValueError(f"every class needs samples; counts per class: "
                             f"{None if self.shape is None else self.counts.tolist()}")
        self.rel_means = self.sums / self.counts[:, None]  # μ_c − shift
        self.centred = centre(self.rel_means, self.counts)
        self.basis, self.singular_values = between_class_basis(self.rel_means, self.counts)
        ncc = self.rel_means if ncc_means is None else ncc_means.to(self.rel_means) - self.shift  # ν_c − shift
        # One GEMM of the deviations per batch serves NC1 and NCC: h·ν_c = (h − μ_y)·ν_c + μ_y·ν_c (all − shift).
        self._targets = torch.cat([self.basis, ncc.T], 1)  # (d, r + C)
        self._cross = self.rel_means @ ncc.T  # (C, C)
        self._ncc_sq = ncc.square().sum(1)  # (C,)
        self.sq_dev = torch.zeros_like(self.counts)
        self.proj_sq = torch.zeros_like(self.singular_values)
        self.ncc_hits = self.counts.new_zeros(2)  # [NCC == label, NCC == network argmax]

    @property
    def means(self) -> torch.Tensor:
        """Class means μ_c (C, d)."""
        return self.shift + self.rel_means

    def add_deviations(self, H: torch.Tensor, y: torch.Tensor, net_pred: torch.Tensor) -> None:
        one_hot = self._one_hot(y)
        dev = self._shifted(H).addmm_(one_hot, self.rel_means, alpha=-1)  # h_i − μ_{y_i}
        self.sq_dev += torch.linalg.vector_norm(dev, dim=1).square() @ one_hot
        proj = dev @ self._targets
        r = len(self.singular_values)
        self.proj_sq += proj[:, :r].square().sum(0)
        ncc = (self._ncc_sq - 2 * (proj[:, r:] + one_hot @ self._cross)).argmin(1)  # argmin_c ‖h − ν_c‖², first on ties
        self.ncc_hits += torch.stack([(ncc == y).sum(), (ncc == net_pred).sum()])

    def _shifted(self, H: torch.Tensor) -> torch.Tensor:
        """(B, d) float64 h − shift, a new tensor (the caller's features are never modified)."""
        return flat_view(H).to(torch.float64, copy=True).sub_(self.shift)

    def _one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C) float64 one-hot labels: per-class sums and gathers as GEMMs (index_add_ is slow on CPU)."""
        return torch.nn.functional.one_hot(y, self.num_classes).double()

    def nc3(self, weight_vectors: torch.Tensor, channel: int, *, centered_means: bool = True,
            positions: str = "flatten") -> float:
        """AvCosPABS against ``weight_vectors`` (in, C) of a weight acting on dimension ``channel`` of the features.

        Centred means do not depend on the shift, and are more exact without it.
        """
        means = (self.rel_means if centered_means else self.means).reshape(self.num_classes, *self.shape)
        basis = nc3_mean_basis(means.movedim(channel, 1), self.counts, centered_means=centered_means,
                               positions=positions)
        return avcos_pabs(weight_vectors, basis)

    def measures(self) -> dict[str, float]:
        """All measures but NC3, keyed by the names of ``MEASURES``."""
        n = self.counts.sum()
        tw, tb = trace_within(self.sq_dev, self.counts), trace_between(self.centred)
        acc, agree = (self.ncc_hits / n).tolist()
        return {TRACE_W: tw, TRACE_B: tb, REL_TRACE_W: tw / (tw + tb),
                NC1: nc1(self.proj_sq / n, self.singular_values),
                CDNV: cdnv(self.rel_means, self.sq_dev / self.counts),
                NC2_COS_MEAN: nc2_cos_mean(self.centred), NC2_COS_STD: nc2_cos_std(self.centred),
                NC2_NORM_CV: nc2_norm_cv(self.centred), NCC_ACC: acc, NCC_AGREE: agree}


def measure_features(H: torch.Tensor, y: torch.Tensor, num_classes: int, *,
                     net_pred: torch.Tensor | None = None, ncc_means: torch.Tensor | None = None,
                     weight: torch.Tensor | None = None, centered_means: bool = True,
                     positions: str = "flatten") -> dict[str, float]:
    """All measures of in-memory features H (N, *shape) with labels y (N,) in [0, num_classes).

    ``net_pred`` (N,): the network's predictions for NCC agreement (default: the labels);
    ``ncc_means`` (C, d): the class means NCC uses (default: those of H). With ``weight``, the
    weight of the module H feeds (Linear (out, in), H (N, in); conv (out, in, *k),
    H (N, in, *positions)), NC3 too, with ``centered_means`` and ``positions`` of ``nc3_mean_basis``.
    """
    acc = LayerAccumulator(num_classes)
    acc.add_means(H, y)
    acc.end_means(ncc_means)
    acc.add_deviations(H, y, y if net_pred is None else net_pred)
    if weight is None:
        return acc.measures()
    nc3 = acc.nc3(top_right_singular_vectors(weight, num_classes), 1, centered_means=centered_means,
                  positions=positions)
    return {**acc.measures(), NC3_AVCOS: nc3}


def _nc3_weight_vectors(point: ProbePoint, acc: LayerAccumulator) -> torch.Tensor | None:
    """Top-C right singular vectors of the point's weight if it acts on the features' channels, else None."""
    weight = getattr(point.module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
        return None
    if weight.shape[1] != (acc.num_classes, *acc.shape)[channel_dim(point.module)]:  # e.g. a grouped convolution
        return None
    return top_right_singular_vectors(weight.detach(), acc.num_classes)


def _measure_split(model: nn.Module, batches: Batches, points: Sequence[ProbePoint], *, device: torch.device,
                   train: Sequence[LayerAccumulator] | None, num_classes: int | None, progress: bool,
                   split: str) -> tuple[list[LayerAccumulator], float]:
    """Both passes over one split; NCC uses the means of ``train`` when given, else the split's own.
    Returns the accumulators and the network's accuracy on the split."""
    modules = [p.module for p in points]
    accs: list[LayerAccumulator] = []

    def add_means(features, logits, y):
        if not accs:
            accs.extend(LayerAccumulator(num_classes or logits.shape[-1]) for _ in points)
        for acc, h in zip(accs, features):
            acc.add_means(h, y)

    net_correct = torch.zeros((), dtype=torch.long, device=device)

    def add_deviations(features, logits, y):
        pred = logits.argmax(-1)
        net_correct.add_((pred == y).sum())
        for acc, h in zip(accs, features):
            acc.add_deviations(h, y, pred)

    stream_features(model, batches, modules, add_means, device=device, progress=progress, desc=f"{split} 1/2")
    if not accs:
        raise ValueError(f"the {split} split gave no batches")
    for i, acc in enumerate(accs):
        acc.end_means(None if train is None else train[i].means)
    stream_features(model, batches, modules, add_deviations, device=device, progress=progress, desc=f"{split} 2/2")
    return accs, net_correct.item() / accs[0].counts.sum().item()


def measure_model(model: nn.Module, train_batches: Batches, test_batches: Batches | None = None,
                  points: Sequence[ProbePoint | nn.Module] | None = None, *,
                  device: torch.device | str | None = None, num_classes: int | None = None,
                  centered_means: bool = True, positions: str = "flatten", progress: bool = True) -> pd.DataFrame:
    """Measure every probe point of ``model`` on the train (and test) split.

    ``*_batches``: normalised ``(x, y)`` batches, a zero-argument callable returning an
    iterator (e.g. ``lambda: ds.batches(512)``) or a re-iterable (list, DataLoader): each split
    is read twice. ``points``: ``probe_points(model)`` by default, or any modules (their order
    gives the layer numbers). ``device``: where the model and the float64 statistics live
    (default the model's; a given device moves the model). ``num_classes``: default the
    width of the logits. ``centered_means``, ``positions``: NC3's class-mean span, see
    ``nc3_mean_basis``; the weights' singular vectors are computed once for both splits.

    NCC (NC4) uses the train class means on both splits; every other measure uses the
    split's own statistics. Returns the tidy table ``COLUMNS`` = (split, layer, name, measure,
    value), one row per split, layer and measure of ``MEASURES`` (NC3 only where the module
    has a weight on its input channels), plus one ``NET_ACC`` row per split (layer -1, name
    "network"): the network's accuracy, counted in the same pass.
    """
    for batches in (train_batches, test_batches):
        if batches is not None and not is_reiterable(batches):
            raise TypeError("each split is read twice: pass a zero-argument callable or a re-iterable, "
                            "not a one-shot iterator or generator")
    if device is not None:
        model.to(device)
    device = model_device(model)
    names = {m: n for n, m in model.named_modules()}
    points = probe_points(model) if points is None else [
        p if isinstance(p, ProbePoint) else ProbePoint(i, names.get(p, type(p).__name__), p)
        for i, p in enumerate(points)]
    splits = {"train": _measure_split(model, train_batches, points, device=device, train=None,
                                      num_classes=num_classes, progress=progress, split="train")}
    if test_batches is not None:
        splits["test"] = _measure_split(model, test_batches, points, device=device, train=splits["train"][0],
                                        num_classes=num_classes, progress=progress, split="test")
    train_accs = splits["train"][0]
    weight_vectors = [_nc3_weight_vectors(p, acc) for p, acc in zip(points, train_accs)]
    rows = []
    for split, (accs, _) in splits.items():
        for p, acc, vectors in zip(points, accs, weight_vectors):
            values = acc.measures()
            if vectors is not None:
                values[NC3_AVCOS] = acc.nc3(vectors, channel_dim(p.module), centered_means=centered_means,
                                            positions=positions)
            rows += [(split, p.layer, p.name, measure, value) for measure, value in values.items()]
    rows += [(split, -1, "network", NET_ACC, net_acc) for split, (_, net_acc) in splits.items()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def weight_spectra(points: Sequence[ProbePoint], k: int = 30) -> pd.DataFrame:
    """NC3 relative singular values (eq 2.23) of each probe point's weight, the top ``k`` of each.

    A second tidy table (layer, name, index, sv_rel), index 1-based: the spectrum depends on
    the weights only, not on a split, and has a length of its own per layer, so it is kept out
    of the per-split measure table. Points whose module has no matrix weight are skipped.
    """
    rows = [(p.layer, p.name, i + 1, v)
            for p in points if isinstance(getattr(p.module, "weight", None), torch.Tensor) and p.weight.ndim >= 2
            for i, v in enumerate(relative_singular_values(p.weight.detach())[:k].tolist())]
    return pd.DataFrame(rows, columns=["layer", "name", "index", "sv_rel"])


#: Rules of ``collapse_layer``, the default first.
COLLAPSE_RULES = ("stays", "first")
#: The default collapse measure and threshold, thesis 4.1.1: the relative within-class trace below 0.2.
COLLAPSE_MEASURE, COLLAPSE_THRESHOLD = REL_TRACE_W, 0.2


def collapse_layer(values: pd.DataFrame | pd.Series, measure: str = COLLAPSE_MEASURE,
                   threshold: float = COLLAPSE_THRESHOLD, *,
                   split: str = "train", rule: str = "stays") -> int | None:
    """The layer of collapse: where ``measure`` falls below ``threshold``; None if it never does.

    ``values``: the ``measure_model`` table (filtered to ``split`` and ``measure``) or a Series
    of one measure indexed by layer. The default measure is thesis 4.1.1's: the relative
    within-class trace below 0.2 (``COLLAPSE_MEASURE``, ``COLLAPSE_THRESHOLD``); CDNV (the authors' earlier code) and NC1
    can be chosen by ``measure``. ``rule``:

    - "stays" (default): the first layer from which the measure stays below the threshold
      through the last layer, so that a dip in early layers followed by a rise does not count;
    - "first": the earliest layer below the threshold, thesis 4.1.1's wording.

    NaN counts as not below. An unknown measure or rule, or a table without rows of the
    measure on the split, raises ``ValueError``.
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; known measures: {', '.join(MEASURES)}")
    if rule not in COLLAPSE_RULES:
        raise ValueError(f"unknown rule {rule!r}; known rules: {', '.join(COLLAPSE_RULES)}")
    if isinstance(values, pd.DataFrame):
        rows = values[(values["split"] == split) & (values["measure"] == measure)]
        if rows.empty:
            raise ValueError(f"the table has no {measure!r} rows on split {split!r}; "
                             f"splits: {sorted(values['split'].unique())}")
        values = rows.set_index("layer")["value"]
    values = values.sort_index()
    below = values.to_numpy() < threshold
    if rule == "first":
        first = int(below.argmax()) if below.any() else len(values)
    else:
        first = len(values) - int(below[::-1].cumprod().sum())  # after the last layer not below
    return int(values.index[first]) if first < len(values) else None

"""Neural-collapse measures against closed forms and an independent float64 brute force."""
import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
from sklearn.datasets import load_digits

from inc_utils import metrics as m
from inc_utils.models import MLP, ConvNet, probe_points

RTOL = 1e-8


def brute_force(H, y, C, *, weight=None, ncc_means=None, net_pred=None, positions="flatten"):
    """Every measure from full covariance matrices in float64 (numpy/scipy, no inc_utils code).

    H (N, *shape) features, y (N,) labels; with ``weight`` NC3 too, H's dim 1 being the
    weight's input channel (a conv's (N, in, h, w)) and, for a conv, the class-mean span that
    of the flattened (in, C·h·w) centred class means (their top C left singular vectors, C − 1
    for a Linear) or, with ``positions="average"``, of the centred class means averaged over
    positions (C − 1).
    """
    shape = np.shape(H)[1:]
    H = np.asarray(H, dtype=np.float64).reshape(len(H), -1)
    y = np.asarray(y)
    N, d = H.shape
    mu = np.stack([H[y == c].mean(0) for c in range(C)])
    M = mu - H.mean(0)
    covs = [np.cov(H[y == c].T, bias=True).reshape(d, d) for c in range(C)]
    counts = np.bincount(y, minlength=C)
    Sw = sum(n * S for n, S in zip(counts, covs)) / N
    Sb = M.T @ M / C
    w, V = np.linalg.eigh(Sb)
    w, V = w[-(C - 1):], V[:, -(C - 1):]
    tw, tb = np.trace(Sw), np.trace(Sb)
    var = np.array([np.trace(S) for S in covs])
    pairs = [(a, b) for a in range(C) for b in range(C) if a != b]
    cos = np.array([M[a] @ M[b] / np.linalg.norm(M[a]) / np.linalg.norm(M[b]) for a, b in pairs])
    norms = np.linalg.norm(M, axis=1)
    ncc_means = mu if ncc_means is None else np.asarray(ncc_means, dtype=np.float64)
    ncc = ((H[:, None, :] - ncc_means[None]) ** 2).sum(-1).argmin(1)
    out = {
        m.TRACE_W: tw, m.TRACE_B: tb, m.REL_TRACE_W: tw / (tw + tb),
        m.NC1: np.trace(Sw @ V @ np.diag(1 / w) @ V.T) / C,
        m.CDNV: np.mean([(var[a] + var[b]) / (2 * np.sum((mu[a] - mu[b]) ** 2)) for a, b in pairs]),
        m.NC2_COS_MEAN: cos.mean() + 1 / (C - 1), m.NC2_COS_STD: cos.std(), m.NC2_NORM_CV: norms.std() / norms.mean(),
        m.NCC_ACC: np.mean(ncc == y), m.NCC_AGREE: np.mean(ncc == (y if net_pred is None else np.asarray(net_pred))),
    }
    if weight is not None:
        W = np.asarray(weight, dtype=np.float64)
        W = np.moveaxis(W, 1, -1).reshape(-1, W.shape[1])
        maps = M.reshape(C, shape[0], -1)  # (C, in, positions)
        flat = maps.mean(2).T if positions == "average" else maps.transpose(1, 0, 2).reshape(shape[0], -1)
        Q_M = np.linalg.svd(flat, full_matrices=False)[0][:, : C if flat.shape[1] > C else C - 1]
        V_C = np.linalg.svd(W, full_matrices=False)[2][:C].T
        out[m.NC3_AVCOS] = np.cos(scipy.linalg.subspace_angles(V_C, Q_M)).mean()
    return out


def assert_close(ours, ref, keys=None, rtol=RTOL):
    for key in keys or ref:
        assert ours[key] == pytest.approx(ref[key], rel=rtol, abs=1e-14), key


def random_classes(seed, C=5, d=12, sizes=(40, 55, 23, 61, 37), spread=2.0):
    """Unbalanced Gaussian classes: H (N, d) float64, y (N,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    means = spread * torch.randn(C, d, generator=g, dtype=torch.float64)
    H = means[y] + torch.randn(len(y), d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return H, y


def simplex_etf(C, d, seed=0):
    """C unit-norm centred vectors with pairwise cosine -1/(C-1), in a random C-1 dim subspace of R^d."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, C, generator=g, dtype=torch.float64))[0]
    return (C / (C - 1)) ** 0.5 * (torch.eye(C, dtype=torch.float64) - 1 / C) @ basis.T


# ------------------------------------------------------------------------- analytic values
def test_features_at_a_simplex_etf_are_collapsed():
    C = 10
    means = simplex_etf(C, 20) * 3 + 5  # scaled and shifted: still an ETF around the global mean
    y = torch.arange(C).repeat(7)
    out = m.measure_features(means[y], y, C)
    for key in (m.TRACE_W, m.NC1, m.CDNV, m.REL_TRACE_W, m.NC2_COS_MEAN, m.NC2_COS_STD, m.NC2_NORM_CV):
        assert abs(out[key]) < 1e-12, key
    assert out[m.TRACE_B] == pytest.approx(9.0, rel=1e-12)  # Σ_c ‖μ̃_c‖²/C = 3²
    assert out[m.NCC_ACC] == 1.0 and out[m.NCC_AGREE] == 1.0


def test_nc1_has_the_closed_form_of_exact_gaussian_classes():
    """Each class's sample covariance is made exactly A = diag(a) and Σ_B = diag(b, 0): NC1 = Σ_k a_k/b_k / C."""
    C, d, n = 4, 6, 50
    g = torch.Generator().manual_seed(1)
    a = torch.tensor([0.5, 2.0, 1.5, 0.3, 0.7, 1.1], dtype=torch.float64)
    b = torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)
    helmert = torch.linalg.qr(torch.eye(C, dtype=torch.float64) - 1 / C)[0][:, : C - 1].T  # (C-1, C), rows ⟂ 1
    means = torch.zeros(C, d, dtype=torch.float64)
    means[:, : C - 1] = (helmert.T * (C * b).sqrt())
    blocks = []
    for _ in range(C):
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        z -= z.mean(0)
        whiten = torch.linalg.cholesky(z.T @ z / n)
        blocks.append(torch.linalg.solve_triangular(whiten, z.T, upper=False).T * a.sqrt())
    y = torch.arange(C).repeat_interleave(n)
    H = means[y] + torch.cat(blocks) + 3.0
    out = m.measure_features(H, y, C)
    assert out[m.NC1] == pytest.approx((a[: C - 1] / b).sum().item() / C, rel=1e-12)
    assert out[m.TRACE_W] == pytest.approx(a.sum().item(), rel=1e-12)
    assert out[m.TRACE_B] == pytest.approx(b.sum().item(), rel=1e-12)
    assert out[m.REL_TRACE_W] == pytest.approx((a.sum() / (a.sum() + b.sum())).item(), rel=1e-12)
    assert out[m.CDNV] == pytest.approx(brute_force(H, y, C)[m.CDNV], rel=1e-12)


def _weight_with_right_space(right, d, seed=2):
    """A (30, d) weight whose top right singular vectors are the orthonormal columns of ``right`` (σ 10..), the rest σ ≤ 1."""
    g = torch.Generator().manual_seed(seed)
    rest = torch.linalg.qr(torch.cat([right, torch.randn(d, d, generator=g, dtype=torch.float64)], 1))[0]
    V = torch.cat([right, rest[:, right.shape[1]:]], 1)
    k = min(30, d)
    s = torch.cat([torch.linspace(12, 10, right.shape[1]), torch.linspace(1, 0.1, k - right.shape[1])]).double()
    U = torch.linalg.qr(torch.randn(30, k, generator=g, dtype=torch.float64))[0]
    return U @ torch.diag(s) @ V[:, :k].T


def avcos(weight, means, counts, **kwargs):
    """AvCosPABS of a weight against class means (C, in, *positions)."""
    return m.avcos_pabs(m.top_right_singular_vectors(weight, len(means)), m.nc3_mean_basis(means, counts, **kwargs))


@pytest.mark.parametrize("centered", [True, False])
def test_avcos_pabs_is_one_for_the_class_mean_span_and_zero_orthogonal_to_it(centered):
    C, d = 5, 40
    g = torch.Generator().manual_seed(3)
    means = torch.zeros(C, d, dtype=torch.float64)
    means[:, :C] = torch.randn(C, C, generator=g, dtype=torch.float64)  # raw means span e_1..e_C
    counts = torch.tensor([3.0, 5, 2, 7, 4], dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    aligned = _weight_with_right_space(torch.linalg.qr(means.T)[0], d)
    orthogonal = _weight_with_right_space(eye[:, C: 2 * C], d)
    assert avcos(aligned, means, counts, centered_means=centered) == pytest.approx(1.0, abs=1e-12)
    assert avcos(orthogonal, means, counts, centered_means=centered) == pytest.approx(0.0, abs=1e-12)


def test_avcos_pabs_centred_sees_c_minus_1_angles():
    """Top-C space = centred span (C-1 dims) + a direction ⟂ to the global mean: centred 1, raw (C-1)/C."""
    C, d = 5, 40
    g = torch.Generator().manual_seed(4)
    eye = torch.eye(d, dtype=torch.float64)
    centred = torch.zeros(C, d, dtype=torch.float64)
    centred[:, : C - 1] = torch.randn(C, C - 1, generator=g, dtype=torch.float64)
    centred -= centred.mean(0)  # spans e_1..e_{C-1}
    counts = torch.ones(C, dtype=torch.float64)
    means = centred + 3 * eye[C - 1]  # the global mean direction is e_C
    weight = _weight_with_right_space(torch.cat([eye[:, : C - 1], eye[:, C: C + 1]], 1), d)
    assert avcos(weight, means, counts) == pytest.approx(1.0, abs=1e-12)
    assert avcos(weight, means, counts, centered_means=False) == pytest.approx((C - 1) / C, abs=1e-12)


def test_relative_singular_values_of_conv_weight_use_input_channels_as_columns():
    w = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(5))
    matrix = w.permute(0, 2, 3, 1).reshape(24, 3)
    assert torch.equal(m.weight_matrix(w), matrix)
    s = np.linalg.svd(matrix.double().numpy(), compute_uv=False)
    np.testing.assert_allclose(m.relative_singular_values(w).numpy(), s / s.sum(), rtol=1e-12)


def test_near_collapse_is_exact_where_float32_pinv_of_sigma_b_fails():
    """Within-class std 1e-4 of the mean scale, one pair of classes 3e-3 apart (a lagging pair).

    Σ_B = M Mᵀ/C squares the spread of the between-class scales: its weak eigenvalue (~5e-7)
    sits below float32's rounding floor (~1e-7 · λ_max), so a float32 pinv drops the direction
    that dominates NC1. The streamed SVD of M in float64 keeps it.
    """
    C, d, n = 10, 200, 100
    g = torch.Generator().manual_seed(0)
    means = torch.randn(C, d, generator=g, dtype=torch.float64) + 3
    means[1] = means[0] + 3e-3 * torch.randn(d, generator=g, dtype=torch.float64) / d**0.5
    y = torch.arange(C).repeat_interleave(n)
    H = (means[y] + 1e-4 * torch.randn(C * n, d, generator=g, dtype=torch.float64)).float()
    exact = brute_force(H, y, C)[m.NC1]
    assert m.measure_features(H, y, C)[m.NC1] == pytest.approx(exact, rel=1e-8)

    mu = torch.stack([H[y == c].mean(0) for c in range(C)])
    M, dev = mu - H.mean(0), H - mu[y]
    naive = torch.trace(dev.T @ dev / len(y) @ torch.linalg.pinv(M.T @ M / C)).item() / C
    assert naive < exact / 1e4


# ------------------------------------------------------------------------- agreement with brute force
@pytest.mark.parametrize("seed", [0, 1])
def test_every_measure_matches_brute_force_on_random_unbalanced_classes(seed):
    H, y = random_classes(seed)
    C = 5
    g = torch.Generator().manual_seed(10 + seed)
    train_means = torch.randn(C, H.shape[1], generator=g, dtype=torch.float64)
    net_pred = torch.randint(0, C, y.shape, generator=g)
    weight = torch.randn(7, H.shape[1], generator=g, dtype=torch.float64)
    ref = brute_force(H, y, C, weight=weight, ncc_means=train_means, net_pred=net_pred)
    H_before = H.clone()
    ours = m.measure_features(H, y, C, ncc_means=train_means, net_pred=net_pred, weight=weight)
    assert torch.equal(H, H_before)  # float64 features are not modified in place
    assert set(ours) == set(m.MEASURES)
    assert_close(ours, ref)


def mlp_layer_inputs(model, x):
    """Inputs of the Linears of an inc_utils MLP, computed by slicing its Sequential (no hooks)."""
    n_linear = len(probe_points(model))
    return [model.features[: 1 + 3 * l](x) for l in range(n_linear)]


def convnet_layer_inputs(model, x):
    """Inputs of the convs and classifier of an inc_utils ConvNet with first_relu=True."""
    n_conv = len(probe_points(model)) - 1
    return [model.features[: 3 * l](x) for l in range(n_conv)] + [model.features(x)]


def assert_table_matches_brute_force(table, model, layer_inputs, splits):
    """``splits``: {name: (x, y)}; NCC of every split uses the train means, agreement the model's argmax."""
    points = probe_points(model)
    model.eval()
    with torch.no_grad():
        feats = {s: layer_inputs(model, x) for s, (x, _) in splits.items()}
        preds = {s: model(x).argmax(1) for s, (x, _) in splits.items()}
    C = model.classifier.out_features
    got = table.set_index(["split", "layer", "measure"])["value"].sort_index()
    for s, (_, y) in splits.items():
        for p, H in zip(points, feats[s]):
            train_H, train_y = feats["train"][p.layer], splits["train"][1]
            train_means = np.stack([train_H[train_y == c].double().reshape(-1, H[0].numel()).mean(0) for c in range(C)])
            ref = brute_force(H, y, C, weight=p.weight.detach(), ncc_means=train_means, net_pred=preds[s])
            assert_close(got.loc[(s, p.layer)], ref)
        assert got.loc[(s, -1, m.NET_ACC)] == (preds[s] == y).double().mean().item()
    assert set(table["measure"]) == set(m.MEASURES) | {m.NET_ACC}
    assert list(table.columns) == list(m.COLUMNS)


def train_briefly(model, x, y, steps, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-3)
    targets = torch.nn.functional.one_hot(y, model.classifier.out_features).float()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (model(x) - targets).square().sum(1).mean()).backward()
        opt.step()
    return model


def test_measure_model_matches_brute_force_on_a_trained_mlp():
    torch.manual_seed(0)
    C, d = 4, 16
    centres = 1.5 * torch.randn(C, d)
    y = torch.arange(C).repeat(60)
    x = centres[y] + torch.randn(len(y), d)
    model = train_briefly(MLP(d, C, depth=3, width=32), x[:160], y[:160], steps=300, lr=0.05)
    splits = {"train": (x[:160], y[:160]), "test": (x[160:], y[160:])}
    table = m.measure_model(model, [splits["train"]], [splits["test"]], progress=False)
    assert_table_matches_brute_force(table, model, mlp_layer_inputs, splits)
    assert table.query("split == 'train' and layer == 3 and measure == 'ncc_acc'")["value"].item() == 1.0


def test_measure_model_on_digits_mlp_end_to_end():
    digits = load_digits()
    x = torch.tensor((digits.data - digits.data.mean()) / digits.data.std(), dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = train_briefly(MLP(64, 10, depth=4, width=64), x[:1400], y[:1400], steps=200, lr=0.05)
    splits = {"train": (x[:1400], y[:1400]), "test": (x[1400:], y[1400:])}
    table = m.measure_model(model, lambda: iter([splits["train"]]), [splits["test"]], progress=False)
    assert_table_matches_brute_force(table, model, mlp_layer_inputs, splits)
    rel = table.query("split == 'train' and measure == 'rel_trace_w'").set_index("layer")["value"]
    assert rel.iloc[-1] < rel.iloc[0] / 2  # training separates the classes with depth


def test_measure_model_matches_brute_force_on_a_convnet():
    torch.manual_seed(0)
    model = ConvNet(1, 10, image_size=8, depth=3, channels=16)
    x, y = torch.randn(300, 1, 8, 8), torch.arange(10).repeat(30)
    with torch.no_grad():  # BatchNorm running statistics that are not the identity
        for bn in (mod for mod in model.modules() if isinstance(mod, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
    splits = {"train": (x[:200], y[:200]), "test": (x[200:], y[200:])}
    table = m.measure_model(model, [splits["train"]], [splits["test"]], progress=False)
    assert_table_matches_brute_force(table, model, convnet_layer_inputs, splits)


@pytest.mark.parametrize("positions", m.NC3_POSITIONS)
def test_conv_nc3_matches_brute_force_on_unbalanced_classes(positions):
    """Conv features (N, 6, 4, 5) feeding a (7, 6, 3, 3) weight; 4 classes of unequal sizes."""
    g = torch.Generator().manual_seed(7)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate((30, 12, 25, 18))])
    H = torch.randn(len(y), 6, 4, 5, generator=g, dtype=torch.float64) + torch.randn(4, 6, 4, 5, generator=g, dtype=torch.float64)[y] + 5
    weight = torch.randn(7, 6, 3, 3, generator=g, dtype=torch.float64)
    ours = m.measure_features(H, y, 4, weight=weight, positions=positions)
    assert_close(ours, brute_force(H, y, 4, weight=weight, positions=positions))
    other = m.measure_features(H, y, 4, weight=weight, positions=({*m.NC3_POSITIONS} - {positions}).pop())
    assert abs(ours[m.NC3_AVCOS] - other[m.NC3_AVCOS]) > 1e-3  # the two definitions differ here


def test_conv_nc3_of_one_position_is_the_dense_nc3():
    H, y, weight = features_and_weight(conv=False)
    dense = m.measure_features(H, y, 10, weight=weight)[m.NC3_AVCOS]
    for positions in m.NC3_POSITIONS:
        conv = m.measure_features(H[:, :, None, None], y, 10, weight=weight[:, :, None, None], positions=positions)
        assert conv[m.NC3_AVCOS] == pytest.approx(dense, rel=1e-12)


def test_weight_singular_vectors_are_computed_once_per_checkpoint(monkeypatch):
    calls = []
    monkeypatch.setattr(m, "top_right_singular_vectors",
                        lambda weight, k, f=m.top_right_singular_vectors: calls.append(k) or f(weight, k))
    model = MLP(6, 3, depth=2, width=8)
    x, y = torch.randn(12, 6), torch.arange(3).repeat(4)
    table = m.measure_model(model, [(x, y)], [(x, y)], progress=False)
    assert calls == [3, 3, 3]  # one per weight, not one per weight and split
    assert table.query("measure == 'nc3_avcos'").groupby("split").size().tolist() == [3, 3]


def test_results_do_not_depend_on_the_batch_size():
    """A float64 model, so that the features themselves do not depend on the batch size (float32 GEMMs may)."""
    torch.manual_seed(0)
    model = MLP(20, 6, depth=3, width=24).double()
    x, y = torch.randn(1000, 20, dtype=torch.float64), torch.randint(0, 6, (1000,))
    tables = [m.measure_model(model, lambda b=b: ((x[i: i + b], y[i: i + b]) for i in range(0, 1000, b)),
                              progress=False)["value"].to_numpy() for b in (7, 1000)]
    np.testing.assert_allclose(tables[0], tables[1], rtol=1e-10, atol=1e-15)


# ------------------------------------------------------------------------- invariances
INVARIANT_TO_SCALE = (m.NC1, m.NC2_COS_MEAN, m.NC2_COS_STD, m.NC2_NORM_CV, m.CDNV, m.REL_TRACE_W, m.NC3_AVCOS,
                      m.NCC_ACC, m.NCC_AGREE)


def features_and_weight(conv, C=10, n=60, seed=0):
    """Classes as in the issue's reproducer (spread 2, noise 1): dense H (C·n, 32) with a (24, 32) weight,
    or conv H (C·n, 16, 3, 3) with a (8, 16, 2, 2) weight; y (C·n,)."""
    g = torch.Generator().manual_seed(seed)
    shape, w_shape = ((16, 3, 3), (8, 16, 2, 2)) if conv else ((32,), (24, 32))
    y = torch.arange(C).repeat(n)
    H = torch.randn(len(y), *shape, generator=g, dtype=torch.float64) + 2 * torch.randn(C, *shape, generator=g, dtype=torch.float64)[y]
    return H, y, torch.randn(w_shape, generator=g, dtype=torch.float64)


def rotate_channels(H, weight, seed=3):
    """Rotate the input channels (dim 1) of the features and, to match, of the weight: W·Q^T, Q·h."""
    n = H.shape[1]
    Q = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0]
    return torch.einsum("dc,nc...->nd...", Q, H), torch.einsum("oc...,dc->od...", weight, Q)


@pytest.mark.parametrize("positions", m.NC3_POSITIONS)
@pytest.mark.parametrize("conv", [False, True])
def test_rotating_channels_and_scaling_leave_measures_unchanged(conv, positions):
    H, y, weight = features_and_weight(conv)
    base = m.measure_features(H, y, 10, weight=weight, positions=positions)
    H_rotated, weight_rotated = rotate_channels(H, weight)
    assert_close(m.measure_features(H_rotated, y, 10, weight=weight_rotated, positions=positions), base, rtol=1e-10)
    scaled = m.measure_features(7.3 * H, y, 10, weight=weight, positions=positions)
    assert_close(scaled, base, INVARIANT_TO_SCALE, rtol=1e-10)
    assert scaled[m.TRACE_W] == pytest.approx(7.3**2 * base[m.TRACE_W], rel=1e-12)


def test_the_issues_reproducer_prints_the_same_nc1_twice():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(100)
    H = torch.randn(1000, 32, generator=g, dtype=torch.float64) + 2 * torch.randn(10, 32, generator=g, dtype=torch.float64)[y]
    nc1 = m.measure_features(H, y, 10)[m.NC1]
    assert nc1 == pytest.approx(brute_force(H, y, 10)[m.NC1], rel=1e-12)
    assert m.measure_features(H + 100, y, 10)[m.NC1] == pytest.approx(nc1, rel=1e-14)


@pytest.mark.parametrize("offset", [1e2, 1e4, 1e6])
@pytest.mark.parametrize("positions", m.NC3_POSITIONS)
@pytest.mark.parametrize("conv", [False, True])
def test_an_offset_common_to_all_samples_changes_no_measure(conv, positions, offset):
    """Every measure is shift invariant (NC3 with its default centred means): an offset per feature,
    however large against the spread of the class means, changes only the float64 rounding of H + offset."""
    H, y, weight = features_and_weight(conv)
    direction = 1 + torch.rand(H.shape[1:], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = m.measure_features(H, y, 10, weight=weight, positions=positions)
    shifted = m.measure_features(H + offset * direction, y, 10, weight=weight, positions=positions)
    assert set(shifted) == set(m.MEASURES)
    assert_close(shifted, base, rtol=3e-13 + 1e-17 * offset)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("conv", [False, True])
def test_half_precision_features_with_an_offset(conv, dtype):
    """Half-precision features far from the origin: the measures are those of the same numbers in float64
    with the offset taken off, and close to those of the unrounded features."""
    H, y, weight = features_and_weight(conv)
    for offset in (1e2, 1e3):
        half = (H + offset).to(dtype)
        ours = m.measure_features(half, y, 10, weight=weight)
        assert_close(ours, m.measure_features(half.double() - offset, y, 10, weight=weight), rtol=1e-12)
    near = m.measure_features((H + 1e2).to(dtype), y, 10, weight=weight)
    exact = m.measure_features(H, y, 10, weight=weight)
    for key in (m.NC1, m.REL_TRACE_W, m.NC3_AVCOS):
        assert near[key] == pytest.approx(exact[key], rel=0.05), key


# ------------------------------------------------------------------------- table helpers
def test_measure_model_needs_two_passes_over_each_split():
    model = MLP(4, 3, depth=1, width=8)
    with pytest.raises(TypeError, match="read twice"):
        m.measure_model(model, ((torch.randn(6, 4), torch.arange(3).repeat(2)) for _ in range(2)), progress=False)


def test_every_class_needs_samples():
    with pytest.raises(ValueError, match="every class"):
        m.measure_features(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]), 4)


def test_weight_spectra_table():
    model = MLP(5, 3, depth=2, width=8)
    table = m.weight_spectra(probe_points(model), k=4)
    assert list(table.columns) == ["layer", "name", "index", "sv_rel"]
    assert table.groupby("layer")["index"].max().tolist() == [4, 4, 3]  # the classifier has 3 singular values
    last = table[table["layer"] == 2]["sv_rel"].sum()
    assert last == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("values, stays, first", [
    ([0.9, 0.5, 0.15, 0.1, 0.05], 2, 2),  # stays below from layer 2
    ([0.9, 0.1, 0.3, 0.19, 0.1], 3, 1),  # dips at 1, rises at 2: "stays" only from 3
    ([0.1, 0.1, 0.1], 0, 0),
    ([0.9, 0.5, 0.3], None, None),  # never
    ([0.9, 0.1, 0.25], None, 1),  # dips, then ends above
    ([0.9, 0.2, 0.1], 2, 2),  # the threshold itself is not below
    ([0.9, float("nan"), 0.1], 2, 2),  # NaN is not below
])
def test_collapse_layer_rules_on_series(values, stays, first):
    series = pd.Series(values, index=range(3, 3 + len(values)))  # layers need not start at 0
    shift = lambda layer: None if layer is None else layer + 3
    assert m.collapse_layer(series) == shift(stays)
    assert m.collapse_layer(series, rule="stays") == shift(stays)
    assert m.collapse_layer(series, rule="first") == shift(first)


def test_collapse_layer_on_the_table_picks_split_and_measure():
    rows = [("train", l, f"l{l}", m.REL_TRACE_W, v) for l, v in enumerate([0.5, 0.3, 0.1])]
    rows += [("test", l, f"l{l}", m.REL_TRACE_W, v) for l, v in enumerate([0.5, 0.4, 0.3])]
    rows += [("train", l, f"l{l}", m.CDNV, v) for l, v in enumerate([0.5, 0.1, 0.1])]
    table = pd.DataFrame(rows[::-1], columns=list(m.COLUMNS))
    assert m.collapse_layer(table) == 2
    assert m.collapse_layer(table, split="test") is None
    assert m.collapse_layer(table, m.CDNV) == 1
    assert m.collapse_layer(table, m.CDNV, threshold=0.05) is None


def test_collapse_layer_rejects_unknown_names():
    table = pd.DataFrame([("train", 0, "l0", m.REL_TRACE_W, 0.1)], columns=list(m.COLUMNS))
    with pytest.raises(ValueError, match="unknown measure 'cdvn'; known measures: trace_w, .*, cdnv, "):
        m.collapse_layer(table, "cdvn")
    with pytest.raises(ValueError, match="unknown rule 'last'; known rules: stays, first"):
        m.collapse_layer(table, rule="last")
    with pytest.raises(ValueError, match=r"no 'rel_trace_w' rows on split 'Train'; splits: \['train'\]"):
        m.collapse_layer(table, split="Train")
    assert m.collapse_layer(table) == 0


def test_dead_features_give_nan_relative_trace_not_an_error():
    # a network that died in training (all ReLUs off) has all-zero features: no collapse, no crash
    y = torch.arange(10).repeat(5)
    values = m.measure_features(torch.zeros(50, 8, dtype=torch.float64), y, 10)
    assert np.isnan(values[m.REL_TRACE_W]) and values[m.TRACE_W] == 0 and values[m.TRACE_B] == 0
    assert m.collapse_layer(pd.Series({0: values[m.REL_TRACE_W]})) is None

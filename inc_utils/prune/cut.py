"""Cutting a trained network at layer ``l``, with a head fitted in closed form (thesis 5.5.1): a
library of functions of a model and its batches; ``prune.runs`` applies it to run folders.

The truncated classifier of layer ``l`` is the part of the network that computes layer ``l``'s
features (the input to its ``l``-th Linear/Conv module, thesis 2.3.4; see ``models``), flattened to ``(B, d)``,
followed by one ``nn.Linear(d, C)`` head fitted on the *training* features of that layer, with
no SGD:

- ``ncc``: nearest class centre with the train class means μ_c (the NC4 rule). Since
  argmin_c ‖h − μ_c‖² = argmax_c (2 μ_c·h − ‖μ_c‖²), it is a Linear with W = 2 μ, b = −‖μ‖².
- ``ridge``: the minimiser of mean ½‖W[h; 1] − e_y‖² + ½ ridge ‖W‖² over the training set (the
  MSE objective the network was trained with, the penalty of its weight decay), i.e.
  ``(A + N·ridge·I)⁻¹ B`` with ``A = [H 1]ᵀ[H 1]``, ``B = [H 1]ᵀY`` accumulated batch by batch
  in float64 (the features are never held). With ``ridge`` = the run's weight decay this is
  the classifier SGD would converge to on these fixed features. ``A`` has (d + 1)² entries, so
  layers wider than ``MAX_RIDGE_FEATURES`` get only the NCC head. The class sums NCC needs are
  rows of ``B``.

Layer 0 (the input) keeps no layer of the network: its classifier is a linear model of the
pixels. BatchNorm is kept, in eval mode, as it is in the network (folding it into the
preceding Linear/Conv would save its few multiply-adds but change nothing else).

Where a cut is defined: MLP-L and ConvNet-L at every layer (they are plain chains of blocks);
torchvision ResNets only at block boundaries (layer 0, the input of each residual block, and
the input of ``fc``): a cut inside a block would drop its shortcut. ``cut_layers`` lists them.

Export: ``torch.export`` to a ``.pt2`` file, with a dynamic batch dimension. TorchScript is
deprecated in current PyTorch; an exported program is a self-contained graph plus weights
that ``torch.export.load(path).module()`` runs with torch alone (no ``inc_utils``, no model
code), and it is the input format of PyTorch's ahead-of-time compilers.

Costs count parameters and the multiply-adds of Linear/Conv modules for one sample
(BatchNorm, ReLU and pooling are left out); the truncated model's costs include its head.
"""
from __future__ import annotations

import copy
import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..capture import Batches, iterate, model_device, stream_features
from ..config import ConfigError
from ..models import probe_points
from ..runs import atomic_write_bytes

HEADS = ("ncc", "ridge")
MAX_RIDGE_FEATURES = 8192            # A is (d + 1)² float64: 0.5 GiB at this width
GRAM_BUDGET_BYTES = 2 * 2**30        # the A matrices accumulated together in one pass over the data


class CutError(ConfigError):
    """A layer at which the network cannot be cut (out of range, or inside a residual block)."""


@dataclass(frozen=True)
class Head:
    """A linear head on the flattened features of one layer: scores = h @ weight.T + bias.

    ``weight`` (C, d) and ``bias`` (C,) are float64; ``kind`` is one of ``HEADS``."""

    layer: int
    kind: str
    weight: torch.Tensor
    bias: torch.Tensor

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """(B, *shape) features -> (B, C) float64 scores."""
        return torch.addmm(self.bias, h.reshape(len(h), -1).double(), self.weight.T)

    def linear(self) -> nn.Linear:
        """The head as a float32 ``nn.Linear(d, C)``."""
        out = nn.Linear(self.weight.shape[1], self.weight.shape[0])
        with torch.no_grad():
            out.weight.copy_(self.weight)
            out.bias.copy_(self.bias)
        return out


# ----------------------------------------------------------------------------- where to cut
def _chain(model: nn.Module) -> tuple[list[nn.Module], dict[int, int]]:
    """The model as a chain of modules whose composition is its forward pass, and for each layer
    where a cut is defined the position in the chain at which that layer's features appear."""
    points = probe_points(model)
    if hasattr(model, "features") and hasattr(model, "classifier"):  # MLP, ConvNet
        chain = [*model.features, model.classifier]
        where = {id(m): i for i, m in enumerate(chain)}
        return chain, {p.layer: where[id(p.module)] for p in points if id(p.module) in where}
    if all(hasattr(model, n) for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "avgpool", "fc")):  # ResNet
        blocks = [b for name in ("layer1", "layer2", "layer3", "layer4") for b in getattr(model, name)]
        chain = [model.conv1, model.bn1, model.relu, model.maxpool, *blocks, model.avgpool, nn.Flatten(), model.fc]
        starts = {id(model.conv1): 0, id(model.fc): len(chain) - 1}
        starts.update({id(b.conv1): 4 + i for i, b in enumerate(blocks)})
        return chain, {p.layer: starts[id(p.module)] for p in points if id(p.module) in starts}
    raise CutError(f"cutting is defined for this package's MLP and ConvNet and torchvision ResNets, "
                   f"not for {type(model).__name__}")


def cut_layers(model: nn.Module) -> list[int]:
    """The layers at which ``model`` can be cut, ascending (all of them except inside ResNet blocks)."""
    return sorted(_chain(model)[1])


def check_layer(model: nn.Module, layer: int) -> None:
    """Raise ``CutError`` (one line) unless ``model`` can be cut at ``layer``."""
    cuts = _chain(model)[1]
    n = len(probe_points(model))
    if not 0 <= layer < n:
        raise CutError(f"layer {layer} is out of range: this network has layers 0..{n - 1}")
    if layer not in cuts:
        raise CutError(f"layer {layer} is inside a residual block; a ResNet can be cut only at block "
                       f"boundaries, layers {', '.join(map(str, sorted(cuts)))}")


def trunk(model: nn.Module, layer: int) -> nn.Sequential:
    """A copy of the modules computing ``layer``'s features, ending in a Flatten: (B, *in) -> (B, d)."""
    check_layer(model, layer)
    chain, cuts = _chain(model)
    return nn.Sequential(*copy.deepcopy(chain[:cuts[layer]]), nn.Flatten()).eval()


def truncate(model: nn.Module, head: Head) -> nn.Sequential:
    """The truncated classifier: ``trunk(model, head.layer)`` then the head, in eval mode,
    on the model's device, sharing no tensors with ``model``."""
    return nn.Sequential(trunk(model, head.layer), head.linear()).to(model_device(model)).eval()


# ----------------------------------------------------------------------------- fitting heads
def _layer_groups(dims: list[int], ridge_layers: list[bool]) -> list[list[int]]:
    """Indices grouped so that each group's A matrices fit ``GRAM_BUDGET_BYTES`` together."""
    groups, current, used = [], [], 0
    for i, (d, ridge) in enumerate(zip(dims, ridge_layers)):
        size = 8 * (d + 1) ** 2 if ridge else 0
        if current and used + size > GRAM_BUDGET_BYTES:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += size
    return groups + [current] if current else groups


def _feature_dims(model: nn.Module, batches: Batches, modules: list[nn.Module]) -> tuple[list[int], int]:
    """Flattened width of each module's input, and the number of classes (from the logits), from one batch."""
    x, _ = next(iter(iterate(batches)))
    dims = [0] * len(modules)

    def hook(i: int):
        return lambda module, args: dims.__setitem__(i, args[0][0].numel())

    hooks = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(modules)]
    was_training = model.training
    try:
        with torch.no_grad():
            logits = model.eval()(x[:2].to(model_device(model)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return dims, logits.shape[-1]


def fit_heads(model: nn.Module, train_batches: Batches, layers: list[int] | None = None,
              heads: tuple[str, ...] = HEADS, ridge: float = 1e-4) -> dict[tuple[int, str], Head]:
    """Heads fitted on the training features of ``layers`` (default: every layer where a cut is
    defined), keyed by ``(layer, kind)``; ``ridge``: the per-sample penalty (module docstring).
    Ridge heads are skipped for layers wider than ``MAX_RIDGE_FEATURES``. Reads ``train_batches``
    once per group of layers whose Gram matrices fit ``GRAM_BUDGET_BYTES`` (once for MLPs)."""
    unknown = set(heads) - set(HEADS)
    if unknown:
        raise ConfigError(f"unknown head(s) {sorted(unknown)}; choose from {', '.join(HEADS)}")
    layers = cut_layers(model) if layers is None else sorted(set(layers))
    for layer in layers:
        check_layer(model, layer)
    points = probe_points(model)
    modules = [points[layer].module for layer in layers]
    dims, num_classes = _feature_dims(model, train_batches, modules)
    wants_ridge = ["ridge" in heads and d <= MAX_RIDGE_FEATURES for d in dims]
    fitted = {}
    for group in _layer_groups(dims, wants_ridge):
        dev = model_device(model)
        A = {i: torch.zeros(dims[i] + 1, dims[i] + 1, dtype=torch.float64, device=dev)
             for i in group if wants_ridge[i]}
        B = {i: torch.zeros(dims[i] + 1, num_classes, dtype=torch.float64, device=dev) for i in group}

        def accumulate(features, logits, y):
            Y = nn.functional.one_hot(y, num_classes).double()
            for i, h in zip(group, features):
                X = torch.cat([h.reshape(len(h), -1).double(), torch.ones_like(Y[:, :1])], 1)
                B[i].addmm_(X.T, Y)
                if i in A:
                    A[i].addmm_(X.T, X)

        stream_features(model, train_batches, [modules[i] for i in group], accumulate)
        for i in group:
            layer = layers[i]
            counts = B[i][-1]
            if (counts == 0).any():
                raise ValueError(f"every class needs training samples; counts per class: {counts.tolist()}")
            if "ncc" in heads:
                means = (B[i][:-1] / counts).T  # (C, d)
                fitted[layer, "ncc"] = Head(layer, "ncc", 2 * means, -means.square().sum(1))
            if i in A:
                lam = ridge * counts.sum()
                W = torch.linalg.solve(A[i] + lam * torch.eye(len(A[i]), dtype=A[i].dtype, device=dev), B[i])
                fitted[layer, "ridge"] = Head(layer, "ridge", W[:-1].T.contiguous(), W[-1].clone())
    return fitted


def evaluate_heads(model: nn.Module, heads: dict[tuple[int, str], Head], batches: Batches) -> pd.DataFrame:
    """Accuracy of every head on one pass of ``batches``, and its agreement with the network's
    own predictions. Columns ``layer, head, accuracy, agreement``; the network itself is the row
    with layer -1 and head ``network``. Scores are computed in float64."""
    layers = sorted({layer for layer, _ in heads})
    points = probe_points(model)
    dev = model_device(model)
    hits = {key: torch.zeros(2, dtype=torch.long, device=dev) for key in [*heads, (-1, "network")]}
    total = 0

    def count(features, logits, y):
        nonlocal total
        pred = logits.argmax(-1)
        total += len(y)
        hits[-1, "network"] += torch.stack([(pred == y).sum(), (pred == pred).sum()])
        by_layer = dict(zip(layers, features))
        for key, head in heads.items():
            guess = head.scores(by_layer[head.layer]).argmax(-1)
            hits[key] += torch.stack([(guess == y).sum(), (guess == pred).sum()])

    stream_features(model, batches, [points[layer].module for layer in layers], count)
    rows = [(layer, kind, *(n / total for n in h.tolist())) for (layer, kind), h in hits.items()]
    table = pd.DataFrame(rows, columns=["layer", "head", "accuracy", "agreement"])
    return table.sort_values(["layer", "head"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- costs and speed
def cost(module: nn.Module, in_shape: tuple[int, ...], nonzero: bool = False) -> dict[str, int]:
    """``params`` (parameter entries) and ``macs`` (multiply-adds of Linear/Conv modules for one
    sample of shape ``in_shape``) of ``module``; with ``nonzero`` only nonzero entries count (a
    pruned network's masked weights are zeros and cost nothing)."""
    count = (lambda t: int((t != 0).sum())) if nonzero else (lambda t: t.numel())
    macs = []

    def hook(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        positions = 1 if isinstance(m, nn.Linear) else out[0][0].numel()   # a conv weight acts at every output position
        macs.append(count(m.weight) * positions)

    hooks = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *in_shape, device=model_device(module)))
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    return {"params": sum(count(p) for p in module.parameters()), "macs": sum(macs)}


def cost_table(model: nn.Module, in_shape: tuple[int, ...], num_classes: int,
               layers: list[int] | None = None) -> pd.DataFrame:
    """Per layer: params and macs of the truncated classifier (trunk + a d x C head) and their
    fractions of the full network's. Columns ``layer, params, macs, params_frac, macs_frac``."""
    full = cost(model, in_shape)
    rows = []
    for layer in cut_layers(model) if layers is None else layers:
        body = trunk(model, layer).to(model_device(model))
        c = cost(body, in_shape)
        with torch.no_grad():
            d = body(torch.zeros(1, *in_shape, device=model_device(model))).shape[1]
        params, macs = c["params"] + (d + 1) * num_classes, c["macs"] + d * num_classes
        rows.append((layer, params, macs, params / full["params"], macs / full["macs"]))
    return pd.DataFrame(rows, columns=["layer", "params", "macs", "params_frac", "macs_frac"])


def _seconds(module: nn.Module, x: torch.Tensor) -> float:
    """Wall time of one ``module(x)`` (CUDA synchronised before and after)."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    sync()
    tic = time.perf_counter()
    module(x)
    sync()
    return time.perf_counter() - tic


def speed_table(full: nn.Module, truncated: dict[int, nn.Module], in_shape: tuple[int, ...],
                batch_sizes: tuple[int, ...] = (1, 256), repeats: int = 50, warmup: int = 5) -> pd.DataFrame:
    """Latency of the full network and of each truncated one (keyed by layer), in one process on
    the full network's device, eval mode, ``torch.inference_mode``: every model is called once per
    round, round-robin (so drifting load on the machine hits all alike), and the median over
    ``repeats`` rounds after ``warmup`` is kept. Columns ``layer, batch, seconds, per_second``
    (samples per second), ``speedup`` (full network's seconds / these); the full network is layer -1."""
    device = model_device(full)
    models = {-1: full.eval(), **{layer: m.eval() for layer, m in truncated.items()}}
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, *in_shape, device=device)
        times = {layer: [] for layer in models}
        with torch.inference_mode():
            for round_ in range(warmup + repeats):
                for layer, module in models.items():
                    seconds = _seconds(module, x)
                    if round_ >= warmup:
                        times[layer].append(seconds)
        base = statistics.median(times[-1])
        for layer, t in times.items():
            seconds = statistics.median(t)
            rows.append((layer, batch, seconds, batch / seconds, base / seconds))
    return pd.DataFrame(rows, columns=["layer", "batch", "seconds", "per_second", "speedup"])


# ----------------------------------------------------------------------------- export
def export(module: nn.Module, path: str | Path, in_shape: tuple[int, ...]) -> Path:
    """Write ``module`` (eval mode) as a ``torch.export`` program with a dynamic batch dimension;
    load it with ``torch.export.load(path).module()``. Written atomically."""
    from torch.export import Dim
    example = torch.zeros(2, *in_shape, device=model_device(module))
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=({0: Dim("batch", min=1)},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


# ----------------------------------------------------------------------------- every layer
def layer_table(model: nn.Module, train_batches: Batches, test_batches: Batches, in_shape: tuple[int, ...],
                ridge: float = 1e-4) -> pd.DataFrame:
    """Both heads at every cuttable layer: test accuracy, agreement with the network, costs.

    Columns ``layer, head, accuracy, agreement, params, macs, params_frac, macs_frac``; the full
    network is the row with layer -1 (head ``network``, fractions 1). ``ridge``: see ``fit_heads``."""
    heads = fit_heads(model, train_batches, ridge=ridge)
    table = evaluate_heads(model, heads, test_batches)
    num_classes = next(iter(heads.values())).weight.shape[0]
    costs = cost_table(model, in_shape, num_classes)
    full = cost(model, in_shape)
    costs = pd.concat([costs, pd.DataFrame([{"layer": -1, **full, "params_frac": 1.0, "macs_frac": 1.0}])])
    return table.merge(costs, on="layer", how="left")


def earliest_keeping(table: pd.DataFrame, head: str, tolerance: float = 0.01) -> int | None:
    """First layer whose ``head`` loses at most ``tolerance`` of test accuracy against the network
    (``layer_table`` rows); None if none does."""
    net = table.loc[table["head"] == "network", "accuracy"].item()
    rows = table[(table["head"] == head) & (table["accuracy"] >= net - tolerance - 1e-12)]
    return int(rows["layer"].min()) if len(rows) else None

"""Materialise the activations of a few layers for chapters 3-4 (clustering, UMAP, PCA).

Unlike the NC measures, clustering and PCA need every sample's features at once. Only the
layers asked for are kept, as float32 numpy arrays (50,000 x 1024 is 200 MB per layer),
flattened per sample; everything else streams through ``capture.stream_features``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .capture import flat_view, stream_features
from .data import Dataset
from .models import probe_points


def collect_activations(model: nn.Module, data: Dataset, layers: list[int], *, batch_size: int = 1024,
                        progress: bool = False) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """({layer: (N, d) float32 features}, y (N,), network predictions (N,)) over ``data``, eval mode.

    ``layers`` index ``probe_points(model)`` (layer 0 = input); the features are each probe
    module's input, flattened per sample.
    """
    points = probe_points(model)
    bad = [layer for layer in layers if not 0 <= layer < len(points)]
    if bad:
        raise ValueError(f"layers {bad} out of range: the model has layers 0..{len(points) - 1}")
    out, labels, preds, start = {}, np.empty(len(data), np.int64), np.empty(len(data), np.int64), 0

    def keep(features: list[torch.Tensor], logits: torch.Tensor, y: torch.Tensor) -> None:
        nonlocal start
        end = start + len(y)
        for layer, h in zip(layers, features):
            flat = flat_view(h).float().cpu().numpy()
            if layer not in out:
                out[layer] = np.empty((len(data), flat.shape[1]), np.float32)
            out[layer][start:end] = flat
        labels[start:end] = y.cpu().numpy()
        preds[start:end] = logits.argmax(1).cpu().numpy()
        start = end

    stream_features(model, lambda: data.batches(batch_size), [points[layer].module for layer in layers], keep,
                    progress=progress, desc="activations")
    return out, labels, preds


def run_activations(run, layers: list[int], *, n_per_class: int | None = None, subset_seed: int = 0,
                    epoch: int | None = None, device: str = "cpu", data_root=None, batch_size: int = 1024):
    """``collect_activations`` of a trained run's checkpoint (default: its last epoch) over its
    train split, or a balanced seeded subset of ``n_per_class`` points per class of it."""
    from .data import load_splits
    from .measure import load_model
    config = run.config
    train_set, _ = load_splits(config, device, data_root)
    if n_per_class is not None:
        train_set = train_set.subset(n_per_class, subset_seed)
    model = load_model(run, epoch or config.epochs, device, train_set)
    return collect_activations(model, train_set, layers, batch_size=batch_size)

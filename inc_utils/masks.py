"""Weight masks for lottery tickets: pure selection rules, and applying them with ``torch.nn.utils.prune``.

A network's masks are one 0/1 float tensor per probe point (``models.probe_points``: every
Linear/Conv module in forward order, the last one the output layer), shaped like its weight.
Only those weights are pruned; BatchNorm scales and shifts, and biases, stay dense.

- ``magnitude_masks``: one round of iterative magnitude pruning (Frankle and Carbin 2019):
  among the surviving weights of all layers but the output one, the ``rate`` share with the
  smallest magnitudes is removed by one global threshold; the output layer loses its own
  ``output_rate`` share of survivors (a lower rate, as in their fully connected networks).
- ``random_masks``: the control, a uniformly random mask with the same number of survivors
  in every layer.

``apply_masks`` reparametrises the modules with ``torch.nn.utils.prune.custom_from_mask``
(``weight = weight_orig * weight_mask``, so masked weights get no gradient) after zeroing the
masked weights themselves: with momentum and weight decay they then stay exactly zero, and
``weight_orig`` equals the effective weight at every step. ``effective_state_dict`` is a
pruned model's state dict in the plain model's keys (``weight`` = ``weight_orig * weight_mask``),
which every other part of the package loads and measures like any run's weights.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from .models import probe_points


def magnitude_masks(weights: list[torch.Tensor], masks: list[torch.Tensor], rate: float,
                    output_rate: float) -> list[torch.Tensor]:
    """Next round's masks: ``masks`` with ``round(rate * survivors)`` of the hidden layers' surviving
    ``weights`` removed by global magnitude, and ``round(output_rate * survivors)`` of the last layer's.
    Ties at the threshold are broken by position (``torch.topk``)."""
    if len(weights) != len(masks) or len(weights) < 2:
        raise ValueError(f"need one mask per weight and at least two layers, got {len(weights)}, {len(masks)}")
    hidden = _prune_by_magnitude(weights[:-1], masks[:-1], rate)
    return hidden + _prune_by_magnitude(weights[-1:], masks[-1:], output_rate)


def _prune_by_magnitude(weights: list[torch.Tensor], masks: list[torch.Tensor], rate: float) -> list[torch.Tensor]:
    """Keep the largest ``|w|`` among survivors of all ``weights`` together, dropping ``rate`` of them."""
    scores = torch.cat([torch.where(m.bool(), w.detach().abs().cpu().float(), -1.0).flatten()
                        for w, m in zip(weights, (m.cpu() for m in masks))])
    alive = int(sum(m.sum().item() for m in masks))
    keep = alive - round(rate * alive)
    flat = torch.zeros_like(scores)
    flat[torch.topk(scores, keep, sorted=False).indices] = 1.0
    return [part.view_as(m).to(m.dtype) for part, m in zip(flat.split([m.numel() for m in masks]), masks)]


def random_masks(masks: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Masks with as many survivors as ``masks`` in every layer, at uniformly random positions."""
    out = []
    for m in masks:
        flat = torch.zeros(m.numel(), dtype=m.dtype)
        flat[torch.randperm(m.numel(), generator=generator)[:int(m.sum().item())]] = 1
        out.append(flat.view_as(m))
    return out


def densities(masks: list[torch.Tensor]) -> list[float]:
    """Share of weights kept in each layer."""
    return [m.mean().item() for m in masks]


def apply_masks(model: nn.Module, masks: list[torch.Tensor]) -> nn.Module:
    """Zero the masked weights of ``model``'s probe points and reparametrise them with
    ``torch.nn.utils.prune.custom_from_mask``; returns ``model`` (changed in place)."""
    points = probe_points(model)
    if len(points) != len(masks):
        raise ValueError(f"{len(masks)} masks for a network of {len(points)} layers")
    for point, mask in zip(points, masks):
        mask = mask.to(point.weight.device, point.weight.dtype)
        with torch.no_grad():
            point.module.weight.mul_(mask)
        prune.custom_from_mask(point.module, "weight", mask)
    return model


def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with each pruned ``weight_orig``/``weight_mask`` pair replaced by the
    effective ``weight`` (their product), in the unpruned model's key order."""
    state = model.state_dict()
    out = {}
    for key, value in state.items():
        if key.endswith("weight_orig"):
            base = key[:-len("_orig")]
            out[base] = value * state[base + "_mask"]
        elif not key.endswith("weight_mask"):
            out[key] = value
    return out


"""Stream the input features of chosen modules, batch by batch, into a consumer.

A layer's features are the *input* to its module (thesis 2.3.4; ``models``), so the hooks are forward
pre-hooks. They work on any ``nn.Module``: pass ``[p.module for p in probe_points(model)]``
or any list of submodules. Nothing is kept beyond the current batch, so memory stays at one
batch of activations whatever the size of the data.

A captured batch ``x`` of shape ``(B, *shape)`` is seen through ``flat_view(x)``: ``(B, d)``
with ``d = prod(shape)``, e.g. a conv map ``(B, C, H, W)`` becomes ``(B, C*H*W)``. NC1, NC2,
NC4, traces and CDNV use this view; NC3 keeps the input channels apart (``channel_dim``,
``metrics.nc3_mean_basis``).
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence, Union

import torch
from torch import nn
from tqdm.auto import tqdm

Batch = tuple[torch.Tensor, torch.Tensor]
#: One pass of ``(x, y)`` batches: an iterable, or a zero-argument callable returning one.
Batches = Union[Iterable[Batch], Callable[[], Iterable[Batch]]]
#: ``consume(features, logits, y)``: features[i] ``(B, *shape_i)`` is the input of modules[i].
Consumer = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor], None]


def iterate(batches: Batches) -> Iterable[Batch]:
    """One pass over ``batches``: call it if it is callable, else iterate it."""
    return batches() if callable(batches) else iter(batches)


def is_reiterable(batches: Batches) -> bool:
    """True for callables and containers (list, DataLoader); False for one-shot iterators."""
    return callable(batches) or iter(batches) is not batches


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device


def flat_view(x: torch.Tensor) -> torch.Tensor:
    """(B, *shape) -> (B, prod(shape))."""
    return x.reshape(x.shape[0], -1)


def channel_dim(module: nn.Module) -> int:
    """Dimension of the input channels in the module's input: 1 for a conv (weight of rank > 2), else -1."""
    weight = getattr(module, "weight", None)
    return 1 if isinstance(weight, torch.Tensor) and weight.ndim > 2 else -1


def stream_features(model: nn.Module, batches: Batches, modules: Sequence[nn.Module], consume: Consumer, *,
                    device: torch.device | str | None = None, progress: bool = False,
                    desc: str | None = None) -> None:
    """Run ``model`` once over ``batches`` and call ``consume(features, logits, y)`` per batch.

    ``features[i]``: the (detached) first positional input of ``modules[i]`` as the module
    received it, ``(B, *shape_i)``; ``logits``: the model output ``(B, C)``; ``y``: ``(B,)``
    labels. Batches are moved to ``device`` (default: the model's). The model runs in eval
    mode under ``torch.no_grad``; afterwards the hooks are removed and its train/eval mode
    restored, also when the model or the consumer raises. Each module must run exactly once
    per forward pass (a module reused in one pass would be ambiguous, and raises).
    """
    device = model_device(model) if device is None else torch.device(device)
    captured: list[torch.Tensor | None] = [None] * len(modules)

    def pre_hook(i: int):
        def hook(module: nn.Module, args: tuple) -> None:
            if captured[i] is not None:
                raise RuntimeError(f"module {i} ({type(module).__name__}) ran twice in one forward pass")
            captured[i] = args[0].detach()
        return hook

    handles = [m.register_forward_pre_hook(pre_hook(i)) for i, m in enumerate(modules)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x, y in tqdm(iterate(batches), desc=desc, disable=not progress, leave=False):
                captured[:] = [None] * len(modules)
                logits = model(x.to(device))
                missing = [i for i, h in enumerate(captured) if h is None]
                if missing:
                    raise RuntimeError(f"modules {missing} did not run in the forward pass")
                consume(list(captured), logits, y.to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

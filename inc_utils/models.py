"""Model builders (MLP-L, ConvNet-L, ResNet-L) and their probe points.

Layer convention (thesis 2.3.4): the features of layer ``l`` are the
**input** to the network's ``l``-th Linear/Conv module, in forward order. Layer 0 is
therefore the network input itself, and the last probe point is the input to the
classifier (the penultimate features of classic neural collapse). NC3 pairs the
features of layer ``l`` with the weight of the module they feed, ``probe.module.weight``.

MLP-10 has 11 probe points (10 hidden Linears + the classifier), ConvNet-L has L + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import RESNET_DEPTHS, RunConfig
from .data import Dataset


@dataclass(frozen=True)
class ProbePoint:
    """One layer: its index, a readable name, and the Linear/Conv module it feeds."""

    layer: int
    name: str
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        """The weight acting on this layer's features: (out, in) or (out, in, kh, kw)."""
        return self.module.weight


class MLP(nn.Module):
    """MLP-L: ``depth`` x (Linear(width) -> BatchNorm1d -> ReLU), then Linear -> classes.

    Inputs of any shape are flattened. ``bias=False`` follows the authors' code (the
    BatchNorm shift makes a Linear bias redundant); the classifier gets the same flag.
    """

    def __init__(self, in_features: int, num_classes: int, depth: int = 10,
                 width: int = 1024, bias: bool = False):
        super().__init__()
        blocks, d = [], in_features
        for _ in range(depth):
            blocks += [nn.Linear(d, width, bias=bias), nn.BatchNorm1d(width), nn.ReLU()]
            d = width
        self.features = nn.Sequential(nn.Flatten(), *blocks)
        self.classifier = nn.Linear(d, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ConvNet(nn.Module):
    """ConvNet-L: ``depth`` x (Conv -> BatchNorm2d -> ReLU) with ``channels`` channels, then Linear.

    The first two convolutions are 2x2 with stride 2 (downsampling by 4 in total), the rest
    3x3 with padding 1 (thesis 3.2). The final feature map is flattened into the classifier.
    ``first_relu=False`` reproduces the authors' code, whose first block has no ReLU.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, depth: int = 20,
                 channels: int = 128, bias: bool = False, first_relu: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError(f"ConvNet needs depth >= 2 (two downsampling convs), got {depth}")
        blocks, c, size = [], in_channels, image_size
        for i in range(depth):
            if i < 2:
                conv = nn.Conv2d(c, channels, kernel_size=2, stride=2, bias=bias)
                size //= 2
            else:
                conv = nn.Conv2d(c, channels, kernel_size=3, padding=1, bias=bias)
            blocks += [conv, nn.BatchNorm2d(channels)]
            if i > 0 or first_relu:
                blocks.append(nn.ReLU())
            c = channels
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.classifier = nn.Linear(channels * size * size, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def resnet(depth: int, in_channels: int, num_classes: int, cifar_stem: bool = True) -> nn.Module:
    """torchvision's ResNet-``depth`` (18/34/50), randomly initialised, adapted to the data.

    ``cifar_stem=True`` (default) replaces the ImageNet stem (7x7 stride-2 conv + max-pool,
    which shrinks a 32x32 image to 8x8 before the first block) by a 3x3 stride-1 conv and no
    pool, the usual choice for 32x32 inputs. ``False`` keeps the ImageNet stem as the
    authors' code did, only changing its input channels.
    """
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"ResNet depth must be one of {list(RESNET_DEPTHS)}, got {depth}")
    import torchvision  # imported here: about a second a process, and only ResNets need it

    net = getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=num_classes)
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def probe_points(model: nn.Module) -> list[ProbePoint]:
    """Ordered probe points of ``model``: every Linear/Conv module in registration order.

    For our MLP and ConvNet, registration order is forward order. For ResNets the
    shortcut ("downsample") convolutions are skipped: they read the same block input as
    the block's first convolution, so they would repeat a layer.
    """
    points = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)) and "downsample" not in name:
            points.append(ProbePoint(layer=len(points), name=name, module=module))
    return points


def num_layers(arch: str, depth: int) -> int:
    """Number of probe points of ``arch``-``depth`` without building it: L + 1 for MLP-L and
    ConvNet-L (their L hidden blocks plus the classifier), L for ResNet-L."""
    return depth if arch == "resnet" else depth + 1


def build_model(arch: str, depth: int, *, in_shape: tuple[int, int, int], num_classes: int,
                width: int = 1024, bias: bool = False, cifar_stem: bool = True,
                first_relu: bool = True) -> nn.Module:
    """Build ``arch`` in {"mlp", "convnet", "resnet"} for inputs of shape (C, H, W)."""
    c, h, w = in_shape
    if arch == "mlp":
        return MLP(c * h * w, num_classes, depth=depth, width=width, bias=bias)
    if arch == "convnet":
        return ConvNet(c, num_classes, image_size=h, depth=depth, channels=width, bias=bias,
                       first_relu=first_relu)
    if arch == "resnet":
        return resnet(depth, c, num_classes, cifar_stem=cifar_stem)
    raise ValueError(f"unknown architecture {arch!r}; choose from 'mlp', 'convnet', 'resnet'")


def build_for(config: RunConfig, data: Dataset) -> nn.Module:
    """The config's model for ``data``'s input shape and class count (initialised from the global RNG)."""
    return build_model(config.arch, config.depth, in_shape=data.in_shape, num_classes=data.num_classes,
                       width=config.width, bias=config.bias, cifar_stem=config.cifar_stem,
                       first_relu=config.first_relu)


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, batch_size: int = 1024) -> float:
    """Eval-mode accuracy over the whole split; leaves the model in eval mode."""
    model.eval()
    correct = sum((model(x).argmax(1) == y).sum().item() for x, y in data.batches(batch_size))
    return correct / len(data)

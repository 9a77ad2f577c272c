import pytest
import torch
from torch import nn

from inc_utils.models import build_model, num_layers, probe_points


def _features(model, points, x):
    """Inputs of every probe module for one forward pass (eval mode)."""
    seen = {}
    hooks = [p.module.register_forward_pre_hook(lambda m, a, i=p.layer: seen.__setitem__(i, a[0]))
             for p in points]
    model.eval()
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return [seen[i] for i in range(len(points))], out


def test_mlp_probe_points_are_layer_inputs():
    model = build_model("mlp", 10, in_shape=(1, 8, 8), num_classes=10, width=32)
    points = probe_points(model)
    assert len(points) == 11 == num_layers("mlp", 10) and [p.layer for p in points] == list(range(11))
    assert all(isinstance(p.module, nn.Linear) for p in points)
    x = torch.randn(5, 1, 8, 8)
    feats, out = _features(model, points, x)
    assert torch.equal(feats[0], x.flatten(1))            # layer 0 is the network input
    assert [f.shape[1] for f in feats] == [64] + [32] * 10
    assert all((f >= 0).all() for f in feats[1:])         # post-ReLU features
    assert points[-1].weight.shape == (10, 32) and out.shape == (5, 10)
    assert points[0].module.bias is None


def test_convnet_probe_points_and_shapes():
    model = build_model("convnet", 5, in_shape=(3, 32, 32), num_classes=10, width=16)
    points = probe_points(model)
    assert len(points) == 6 == num_layers("convnet", 5) and isinstance(points[-1].module, nn.Linear)
    x = torch.randn(2, 3, 32, 32)
    feats, out = _features(model, points, x)
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 32, 32), (16, 16, 16), (16, 8, 8), (16, 8, 8),
                                                    (16, 8, 8), (16 * 8 * 8,)]
    assert points[0].weight.shape == (16, 3, 2, 2) and points[2].weight.shape == (16, 16, 3, 3)
    assert (feats[1] >= 0).all()
    no_relu = probe_points(build_model("convnet", 3, in_shape=(1, 8, 8), num_classes=10, width=4,
                                       first_relu=False))
    assert len(no_relu) == 4


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_resnet_has_one_probe_point_per_layer(depth):
    model = build_model("resnet", depth, in_shape=(3, 32, 32), num_classes=10)
    points = probe_points(model)
    assert len(points) == depth == num_layers("resnet", depth)  # ResNet-L: L weight layers, shortcuts skipped
    assert points[0].name == "conv1" and points[0].weight.shape[1:] == (3, 3, 3)
    assert points[-1].name == "fc" and points[-1].weight.shape[0] == 10
    assert not any("downsample" in p.name for p in points)


def test_resnet_stems():
    x = torch.randn(2, 1, 32, 32)
    for stem in (True, False):
        model = build_model("resnet", 18, in_shape=(1, 32, 32), num_classes=10, cifar_stem=stem)
        points = probe_points(model)
        feats, out = _features(model, points, x)
        assert out.shape == (2, 10)
        assert feats[1].shape[-1] == (32 if stem else 8)    # ImageNet stem: stride-2 conv + max-pool


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown architecture 'vit'"):
        build_model("vit", 3, in_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(ValueError, match="ResNet depth"):
        build_model("resnet", 20, in_shape=(3, 32, 32), num_classes=10)

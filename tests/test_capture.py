"""Forward-hook streaming of module inputs."""
import pytest
import torch
from torch import nn

from inc_utils.capture import channel_dim, flat_view, is_reiterable, stream_features


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))


def batches(n=10, b=4):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 2, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [(x[i: i + b], y[i: i + b]) for i in range(0, n, b)]


def collect(model, data, modules):
    seen = []
    stream_features(model, data, modules, lambda f, logits, y: seen.append((f, logits, y)))
    return seen


def test_streams_module_inputs_and_logits_in_eval_mode():
    model = small_model().train()
    data = batches()
    seen = collect(model, data, [model[0], model[4]])
    assert model.training  # mode restored
    model.eval()
    for (feats, logits, y), (x, y_true) in zip(seen, data):
        assert torch.equal(feats[0], x)
        assert torch.equal(feats[1], model[:4](x))
        assert torch.equal(logits, model(x)) and torch.equal(y, y_true)
        assert not feats[1].requires_grad
    assert [len(s[2]) for s in seen] == [4, 4, 2]


def test_hooks_are_removed_also_on_error():
    model = small_model()

    def fail(*_):
        raise KeyError("consumer failed")

    with pytest.raises(KeyError):
        stream_features(model.train(), batches(), [model[0], model[4]], fail)
    assert not model[0]._forward_pre_hooks and not model[4]._forward_pre_hooks
    assert model.training


def test_a_module_that_does_not_run_or_runs_twice_raises():
    model = small_model()
    with pytest.raises(RuntimeError, match="did not run"):
        collect(model, batches(), [nn.Linear(2, 2)])
    relu = nn.ReLU()
    twice = nn.Sequential(nn.Linear(3, 3), relu, relu)
    with pytest.raises(RuntimeError, match="twice"):
        collect(twice, [(torch.randn(2, 3), torch.zeros(2))], [relu])
    assert not relu._forward_pre_hooks


def test_flat_view_and_channel_dim():
    x = torch.randn(5, 3, 4, 6)
    assert flat_view(x).shape == (5, 72) and torch.equal(flat_view(x)[2], x[2].flatten())
    assert channel_dim(nn.Conv2d(3, 4, 2)) == 1 and channel_dim(nn.Linear(3, 4)) == -1


def test_is_reiterable():
    data = batches()
    assert is_reiterable(data) and is_reiterable(lambda: iter(data))
    assert not is_reiterable(iter(data)) and not is_reiterable(d for d in data)

import numpy as np
import pytest
import torch

from inc_utils.activations import collect_activations
from inc_utils.data import load_dataset
from inc_utils.models import build_model, probe_points


def test_collect_activations_equals_the_probe_inputs():
    data = load_dataset("synthetic", n_per_class=7)
    torch.manual_seed(0)
    model = build_model("convnet", 3, in_shape=data.in_shape, num_classes=10, width=4).eval()
    acts, y, pred = collect_activations(model, data, [0, 2, 3], batch_size=16)
    x = data.normalize(data.x)
    assert acts[0].dtype == np.float32 and np.allclose(acts[0], x.flatten(1).numpy())
    feats = {}
    points = probe_points(model)
    hooks = [points[i].module.register_forward_pre_hook(lambda m, a, i=i: feats.__setitem__(i, a[0])) for i in (2, 3)]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    for layer in (2, 3):
        assert acts[layer].shape == (70, feats[layer][0].numel())
        assert np.allclose(acts[layer], feats[layer].flatten(1).numpy(), atol=1e-6)
    assert np.array_equal(y, data.y.numpy()) and np.array_equal(pred, logits.argmax(1).numpy())
    with pytest.raises(ValueError, match=r"layers \[4\] out of range"):
        collect_activations(model, data, [4])


def test_run_activations_reads_the_last_checkpoint_on_a_balanced_subset(tmp_path):
    from inc_utils.activations import run_activations
    from inc_utils.config import RunConfig
    from inc_utils.train import train
    cfg = RunConfig(n_per_class=20, depth=2, width=16, epochs=3, lr_milestones=[])
    run = train(cfg, runs_dir=tmp_path, progress=False)
    acts, y, pred = run_activations(run, [0, 2], n_per_class=5, subset_seed=1)
    assert acts[0].shape == (50, 64) and acts[2].shape == (50, 16)
    assert np.bincount(y).tolist() == [5] * 10
    assert (acts[2] >= 0).all() and pred.shape == (50,)

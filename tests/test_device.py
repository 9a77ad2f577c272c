"""The accelerator path: training, resume, measures and neighbours on a GPU.

Skipped where CUDA is missing (CI). On a GPU machine, ``pytest tests/test_device.py`` (or
``benchmarks/gpu_check.sh``) runs them. ``INC_TEST_DEVICE=cpu`` runs the same checks with the CPU
standing in for the GPU, which is how the checks themselves are tested on a machine without one.

What is compared, and why these tolerances:
- batched and solo training on the device agree as on the CPU (``test_batched.assert_same_run``);
  the device's own random generator draws the minibatch orders, so device runs are compared with
  device runs, not with CPU runs;
- a resumed run is bitwise equal to an uninterrupted one on the same device;
- the NC measures of one checkpoint, measured on the device and on the CPU, differ only by the
  float32 forward pass (the statistics are float64 on both): relative 1e-4;
- exact cosine neighbours found on the device and on the CPU are the same points;
- a batched training step never waits for the GPU (``torch.cuda.set_sync_debug_mode("error")``
  raises on any synchronising call), so its kernels queue back to back.
"""
import contextlib
import json
import os

import numpy as np
import pytest
import torch

from inc_utils import batched, metrics
from inc_utils.batched import train_batched
from inc_utils.clustering import cosine_knn
from inc_utils.measure import load_model, measure_run
from inc_utils.data import load_splits
from inc_utils.train import train
from test_batched import CONFIGS, assert_same_run

DEVICE = os.environ.get("INC_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    return train_batched(CONFIGS, runs_dir=tmp_path_factory.mktemp("batched"), device=DEVICE, progress=False)


@pytest.fixture(scope="module")
def solo(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("solo")
    return [train(c, runs_dir=runs_dir, device=DEVICE, progress=False) for c in CONFIGS]


def test_batched_runs_equal_solo_runs_on_device(together, solo):
    for run, ref in zip(together, solo):
        for r in (run, ref):
            assert json.loads((r.path / "provenance.json").read_text())["device"] == DEVICE
        assert_same_run(run, ref)


def test_resume_on_device_is_bitwise_equal(together, solo, tmp_path):
    runs = train_batched(CONFIGS, runs_dir=tmp_path, device=DEVICE, progress=False)
    for run in runs[:2]:                       # members 0 and 1 killed after epoch 4
        for epoch in (8, 10):
            run.checkpoint_path(epoch).unlink()
        run.set_status("running")
    resumed = train_batched(CONFIGS, runs_dir=tmp_path, device=DEVICE, progress=False)
    for run, ref in zip(resumed, together):
        assert_same_run(run, ref, exact=True)

    part = train(CONFIGS[0], runs_dir=tmp_path / "solo", device=DEVICE, progress=False)
    for epoch in (8, 10):
        part.checkpoint_path(epoch).unlink()
    part.set_status("running")
    assert_same_run(train(CONFIGS[0], runs_dir=tmp_path / "solo", device=DEVICE, progress=False), solo[0],
                    exact=True)


def test_measures_on_device_equal_cpu_measures(together):
    run = together[0]
    on_device, _ = measure_run(run, device=DEVICE, progress=False)
    train_set, test_set = load_splits(run.config, "cpu")
    for epoch, table in on_device.groupby("epoch"):
        model = load_model(run, epoch, "cpu", train_set)
        on_cpu = metrics.measure_model(model, lambda: train_set.batches(1024), lambda: test_set.batches(1024),
                                       progress=False)
        assert len(on_cpu) == len(table)
        keys = ["split", "layer", "measure"]
        merged = table.merge(on_cpu, on=keys, suffixes=("_device", "_cpu"))
        assert len(merged) == len(table)
        np.testing.assert_allclose(merged["value_device"], merged["value_cpu"], rtol=1e-4, atol=1e-6,
                                   err_msg=f"epoch {epoch}")


def test_cosine_knn_on_device_equals_cpu():
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((10, 64)) + 0.3 * rng.standard_normal((3000, 10, 64))).reshape(-1, 64)
    A = A.astype(np.float32)
    idx_device, dist_device = cosine_knn(A, k=20, device=DEVICE, block=700)
    idx_cpu, dist_cpu = cosine_knn(A, k=20, device="cpu")
    assert (idx_device[:, 0] == np.arange(len(A))).all()
    np.testing.assert_allclose(dist_device, dist_cpu, atol=1e-5)
    assert (idx_device == idx_cpu).mean() > 0.999           # swaps only between near-ties


@contextlib.contextmanager
def synchronisations_raise():
    """Any host-device synchronisation in the block raises (CUDA only; elsewhere nothing to check)."""
    if not DEVICE.startswith("cuda"):
        yield
        return
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_batched_steps_never_wait_for_the_device():
    train_split, _ = batched.load_group_splits(CONFIGS, DEVICE, None)
    stack = batched.Stack.fresh(CONFIGS, train_split.data, DEVICE)
    orders = [torch.Generator(device=DEVICE).manual_seed(c.seed) for c in CONFIGS]
    order = batched.permutations(orders, train_split.x.shape[1], DEVICE)
    size, initial = CONFIGS[0].batch_size, stack.weights.detach().clone()
    total = torch.zeros(len(CONFIGS), device=DEVICE)
    with synchronisations_raise():
        for start in range(0, 5 * size, size):
            total += batched.train_step(stack, *train_split.gather(order[:, start:start + size]), CONFIGS[0].loss)
    assert torch.isfinite(total).all() and (total > 0).all()
    assert ((stack.weights - initial).abs().amax(1) > 0).all()     # every model took its steps

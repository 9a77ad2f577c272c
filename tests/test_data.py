"""Tests for inc_utils.data: tiny files in every on-disk format, search order, batching."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets

from inc_utils import data
from inc_utils.config import ConfigError
from inc_utils.data import DataFileError, Dataset, DatasetNotFoundError, load_dataset

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path, monkeypatch):
    """No INC_DATA_DIR, an empty cache, no system dirs, and any download attempt fails the test."""
    monkeypatch.delenv("INC_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", (tmp_path / "system",))

    def refuse(*args, **kwargs):
        pytest.fail("tried to download")

    for cls in ("MNIST", "FashionMNIST", "CIFAR10", "SVHN"):
        monkeypatch.setattr(torchvision.datasets, cls, refuse)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, gzipped when ``path`` ends in .gz."""
    payload = (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(payload)


def write_mnist_like(
    folder: Path, split: str, labels, *, gz: bool = False, seed: int = 0
) -> np.ndarray:
    """IDX images (N, 28, 28) and ``labels`` for ``split`` in ``folder``; returns the images."""
    images = np.random.default_rng(seed).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    prefix, ext = ("train" if split == "train" else "t10k"), (".gz" if gz else "")
    write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.asarray(labels, dtype=np.uint8))
    return images


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "name, folder, gz",
    [
        ("mnist", "MNIST/raw", False),
        ("mnist", "mnist", True),
        ("fashion_mnist", "FashionMNIST/raw", True),
        ("fashion_mnist", "fashion-mnist", False),
    ],
)
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_layouts_load_exact_values(tmp_path, name, folder, gz, split):
    labels = [3, 1, 4, 1, 5, 9, 2]
    images = write_mnist_like(tmp_path / folder, split, labels, gz=gz)
    ds = load_dataset(name, split, root=tmp_path)
    assert ds.name == name and ds.num_classes == 10 and len(ds) == 7
    assert ds.x.dtype == torch.uint8 and ds.x.shape == (7, 1, 28, 28) and ds.in_shape == (1, 28, 28)
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == labels
    assert np.array_equal(ds.x[:, 0].numpy(), images)
    assert ds.scale == pytest.approx(1 / 255)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an IDX"):
        data.read_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match="header says shape"):
        data.read_idx(tmp_path / "short")


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2, 70000]], dtype=">i4")
    (tmp_path / "ints").write_bytes(
        bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 1, 3) + values.tobytes()
    )
    assert data.read_idx(tmp_path / "ints").tolist() == [[1, -2, 70000]]


def write_cifar_batch(path: Path, n: int, seed: int, protocol: int = 2) -> tuple[np.ndarray, list[int]]:
    """A batch as the real ones hold it (protocol 2, like the Python 2 originals)."""
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {b"data": flat, b"labels": labels, b"batch_label": b"x", b"filenames": [b"a.png"] * n}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    return flat, labels


class TouchOnLoad:
    """Unpickling this calls ``open(path, "w")``: it would create ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_reads_every_pickle_protocol(tmp_path, protocol):
    flat, labels = write_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", 3, 0, protocol)
    ds = load_dataset("cifar10", "test", root=tmp_path)
    assert ds.y.tolist() == labels and np.array_equal(ds.x.reshape(3, -1).numpy(), flat)


def test_cifar10_crafted_pickle_never_runs_code(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({b"data": TouchOnLoad(target), b"labels": [0]}, protocol=2))
    with pytest.raises(DataFileError, match=r"test_batch: refused to load (builtins|io)\.open") as err:
        load_dataset("cifar10", "test", root=tmp_path)
    assert not target.exists()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, why", [
    (b"", "not a CIFAR-10 batch"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]})[:-30], "not a CIFAR-10 batch"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [1, 2]}), "expected a dict"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "expected a dict"),
    (pickle.dumps([1, 2]), "expected a dict"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 10]}), r"labels must lie in \[0, 10\)"),
])
def test_cifar10_damaged_batches_are_one_line_errors(tmp_path, content, why):
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=why) as err:
        load_dataset("cifar10", "test", root=tmp_path)
    assert "\n" not in str(err.value) and "test_batch" in str(err.value)


def test_damaged_idx_files_are_one_line_errors(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist_like(folder, "test", [1, 2, 3], gz=True)
    gz = folder / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:40])  # truncated gzip stream
    with pytest.raises(DataFileError, match="cannot read"):
        load_dataset("mnist", "test", root=tmp_path)
    write_mnist_like(folder, "test", [1, 2, 10], gz=True)  # a label outside the 10 classes
    with pytest.raises(DataFileError, match=r"labels must lie in \[0, 10\), found 1..10"):
        load_dataset("mnist", "test", root=tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0])))
    with pytest.raises(DataFileError, match="truncated IDX header"):
        load_dataset("mnist", "test", root=tmp_path)


def test_damaged_svhn_files_are_one_line_errors(tmp_path):
    path = tmp_path / "svhn" / "test_32x32.mat"
    path.parent.mkdir()
    path.write_bytes(b"MATLAB 5.0 MAT-file, but cut short")
    with pytest.raises(DataFileError, match="not a readable .mat file"):
        load_dataset("svhn", "test", root=tmp_path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.float64), "y": np.ones((2, 1))})
    with pytest.raises(DataFileError, match="not an SVHN file"):
        load_dataset("svhn", "test", root=tmp_path)
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([["a"], ["b"]], object)})
    with pytest.raises(DataFileError, match="not an SVHN file"):
        load_dataset("svhn", "test", root=tmp_path)


def test_cifar10_pickle_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    train = [write_cifar_batch(folder / f"data_batch_{i}", 2, seed=i) for i in range(1, 6)]
    test_flat, test_labels = write_cifar_batch(folder / "test_batch", 3, seed=9)

    ds = load_dataset("cifar10", "train", root=tmp_path)
    assert ds.x.shape == (10, 3, 32, 32) and ds.x.dtype == torch.uint8
    assert ds.y.tolist() == sum((labels for _, labels in train), [])
    # channel-major rows: pixel (c, h, w) of image n is flat[n, c*1024 + h*32 + w]
    flat = np.concatenate([f for f, _ in train])
    assert ds.x[7, 2, 5, 9].item() == flat[7, 2 * 1024 + 5 * 32 + 9]
    assert np.array_equal(ds.x.reshape(10, -1).numpy(), flat)
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)

    test = load_dataset("cifar10", "test", root=tmp_path)
    assert test.y.tolist() == test_labels and np.array_equal(
        test.x.reshape(3, -1).numpy(), test_flat
    )


def test_cifar10_needs_all_train_batches(tmp_path):
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1", 2, seed=1)
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar10", root=tmp_path)


@pytest.mark.parametrize("folder", ["svhn", "."])
def test_svhn_mat_maps_label_10_to_0(tmp_path, folder):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    (tmp_path / folder).mkdir(exist_ok=True)
    scipy.io.savemat(
        tmp_path / folder / "test_32x32.mat",
        {"X": X, "y": np.array([[10], [1], [9], [10]], np.uint8)},
    )
    ds = load_dataset("svhn", "test", root=tmp_path)
    assert ds.y.tolist() == [0, 1, 9, 0] and ds.y.dtype == torch.int64
    assert ds.x.shape == (4, 3, 32, 32) and ds.x.dtype == torch.uint8
    assert np.array_equal(ds.x.numpy(), X.transpose(3, 2, 0, 1))
    assert ds.x[2, 1, 3, 17].item() == X[3, 17, 1, 2]


# ----------------------------------------------------------------------------- normalisation


def test_normalize_per_channel_values(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batch(folder / "test_batch", 2, seed=0)
    ds = load_dataset("cifar10", "test", root=tmp_path)
    out = ds.normalize(ds.x)
    mean, std = torch.tensor(ds.mean).view(3, 1, 1), torch.tensor(ds.std).view(3, 1, 1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out, (ds.x.double() / 255 - mean.double()) / std.double(), check_dtype=False
    )


def test_pad_to_32_pads_with_zeros_after_normalising(tmp_path):
    write_mnist_like(tmp_path / "mnist", "test", [0, 1])
    ds = load_dataset("mnist", "test", root=tmp_path, pad_to_32=True)
    assert ds.in_shape == (1, 32, 32) and ds.x.shape == (2, 1, 28, 28)
    ((xb, _),) = ds.batches(2)
    assert xb.shape == (2, 1, 32, 32)
    assert torch.equal(xb[:, :, 2:30, 2:30], ds.normalize(ds.x)[:, :, 2:30, 2:30])
    torch.testing.assert_close(xb[:, :, 2:30, 2:30], (ds.x.float() / 255 - 0.1307) / 0.3081)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.all(xb[:, :, border] == 0)
    with pytest.raises(ValueError, match="pad_to_32"):
        load_dataset("digits", pad_to_32=True)


@pytest.mark.skipif(
    not DEBIAN_FMNIST.is_dir(),
    reason=f"{DEBIAN_FMNIST} absent: apt-get install dataset-fashion-mnist",
)
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", (DEBIAN_FMNIST.parent,))
    train, test = load_dataset("fashion_mnist", "train"), load_dataset("fashion_mnist", "test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.x.shape == (60000, 1, 28, 28) and train.x.dtype == torch.uint8
    assert torch.bincount(train.y).tolist() == [6000] * 10
    assert torch.bincount(test.y).tolist() == [1000] * 10
    xn = train.normalize(train.x).double()
    assert abs(xn.mean().item()) < 1e-3 and abs(xn.std().item() - 1) < 1e-3


# ----------------------------------------------------------------------------- search path


def test_search_path_order(tmp_path, monkeypatch):
    monkeypatch.setenv("INC_DATA_DIR", f"{tmp_path / 'e1'}:{tmp_path / 'e2'}")
    assert data.data_search_path(tmp_path / "r") == [
        tmp_path / "r",
        tmp_path / "e1",
        tmp_path / "e2",
        tmp_path / "xdg" / "inc_utils" / "data",
        tmp_path / "system",
    ]
    monkeypatch.delenv("INC_DATA_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "inc_utils" / "data"
    assert data.data_search_path()[0] == data.cache_dir()


def test_root_beats_env_beats_cache_beats_system(tmp_path, monkeypatch):
    places = {
        "root": tmp_path / "root",
        "env": tmp_path / "env",
        "cache": data.cache_dir(),
        "system": tmp_path / "system",
    }
    for label, (place, base) in enumerate(places.items()):
        write_mnist_like(base / "mnist", "test", [label])
    monkeypatch.setenv("INC_DATA_DIR", str(places["env"]))

    def loaded_from(**kwargs):
        return list(places)[load_dataset("mnist", "test", **kwargs).y.item()]

    assert loaded_from(root=places["root"]) == "root"
    assert loaded_from() == "env"
    monkeypatch.delenv("INC_DATA_DIR")
    assert loaded_from() == "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    assert loaded_from() == "system"


def test_both_splits_come_from_the_first_folder_holding_either(tmp_path, monkeypatch):
    write_mnist_like(tmp_path / "root" / "mnist", "train", [1])          # a copy with train only
    write_mnist_like(tmp_path / "system" / "mnist", "train", [2])        # a whole copy further down
    write_mnist_like(tmp_path / "system" / "mnist", "test", [2])
    assert load_dataset("mnist", "train", root=tmp_path / "root").y.tolist() == [1]
    with pytest.raises(DatasetNotFoundError, match="holds the other split but not the test split"):
        load_dataset("mnist", "test", root=tmp_path / "root")
    assert load_dataset("mnist", "test", root=tmp_path / "system").y.tolist() == [2]
    assert load_dataset("mnist", "test").y.tolist() == [2]


def test_missing_dataset_error_names_places_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("INC_DATA_DIR", str(tmp_path / "env"))
    (tmp_path / "r").mkdir()                                   # an explicit root that does not exist is its own error
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion_mnist", "train", root=tmp_path / "r")
    message = str(err.value)
    assert "'fashion_mnist'" in message
    for base in [tmp_path / "r", tmp_path / "env", data.cache_dir(), tmp_path / "system"]:
        assert (
            str(base / "fashion-mnist") in message and str(base / "FashionMNIST" / "raw") in message
        )
    assert (
        "download=True" in message
        and "INC_DATA_DIR" in message
        and "apt-get install dataset-fashion-mnist" in message
    )
    assert isinstance(err.value, FileNotFoundError) and "\n" not in message


def test_download_goes_through_torchvision_into_cache(tmp_path, monkeypatch):
    calls = []

    def fake_mnist(root, train, download):
        calls.append((Path(root), train, download))
        write_mnist_like(
            Path(root) / "MNIST" / "raw", "train" if train else "test", [8, 6], gz=True
        )

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_mnist)
    ds = load_dataset("mnist", "test", download=True)
    assert calls == [(data.cache_dir(), False, True)]
    assert ds.y.tolist() == [8, 6]
    load_dataset("mnist", "test", download=True)  # found in the cache now: no second download
    assert len(calls) == 1


def test_unknown_name_or_split():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("digits", "val")


# ----------------------------------------------------------------------------- subset and batches


def test_subset_is_balanced_and_seeded():
    ds = load_dataset("digits")
    sub = ds.subset(20, seed=3)
    assert len(sub) == 200 and torch.bincount(sub.y).tolist() == [20] * 10
    idx = data.balanced_indices(ds.y, 20, 10, seed=3)
    assert torch.equal(sub.x, ds.x[idx]) and torch.equal(sub.y, ds.y[idx])
    assert torch.equal(idx, data.balanced_indices(ds.y, 20, 10, seed=3))
    assert not torch.equal(idx, data.balanced_indices(ds.y, 20, 10, seed=4))
    via_load = load_dataset("digits", n_per_class=20, seed=3)
    assert torch.equal(via_load.x, sub.x)
    with pytest.raises(ConfigError, match=r"class \d has 3\d examples, fewer than the 40"):
        load_dataset("digits", "test").subset(40)


def make_indexed_dataset(n: int) -> Dataset:
    """n items whose pixels and label are their index (labels reused as identities)."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return Dataset(
        x=x, y=torch.arange(n), mean=(2.0,), std=(4.0,), scale=1.0, num_classes=n, name="indexed"
    )


def test_batches_cover_every_index_once_and_are_seeded():
    ds = make_indexed_dataset(23)
    batches = list(ds.batches(5, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    order = torch.cat([y for _, y in batches])
    assert sorted(order.tolist()) == list(range(23)) and order.tolist() != list(range(23))
    again = torch.cat(
        [y for _, y in ds.batches(5, shuffle=True, generator=torch.Generator().manual_seed(1))]
    )
    other = torch.cat(
        [y for _, y in ds.batches(5, shuffle=True, generator=torch.Generator().manual_seed(2))]
    )
    assert torch.equal(order, again) and not torch.equal(order, other)
    for xb, yb in batches:  # x of item i is i everywhere; mean 2, std 4 -> (i - 2) / 4
        assert xb.dtype == torch.float32
        torch.testing.assert_close(xb, ((yb.float() - 2) / 4).view(-1, 1, 1, 1).expand(-1, 1, 2, 2))
    plain = [y.tolist() for _, y in ds.batches(10, drop_last=True)]
    assert plain == [list(range(10)), list(range(10, 20))]
    one_pass = ds.batches(5)                       # sized, for progress bars; one pass only
    assert (len(one_pass), len(ds.batches(10, drop_last=True)), len(ds.batches(23))) == (5, 2, 1)
    assert len(list(one_pass)) == 5 and list(one_pass) == [] and iter(one_pass) is one_pass


def test_to_returns_an_equal_copy():
    ds = load_dataset("digits", "test")
    moved = ds.to("cpu")
    assert moved is not ds and torch.equal(moved.x, ds.x) and moved.name == "digits"
    assert torch.equal(moved.normalize(moved.x[:4]), ds.normalize(ds.x[:4]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_stay_on_cuda():
    ds = load_dataset("digits").to("cuda")
    xb, yb = next(ds.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert xb.is_cuda and yb.is_cuda and xb.dtype == torch.float32
    cpu_ds = load_dataset("digits")
    cpu_xb, cpu_yb = next(
        cpu_ds.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0))
    )
    assert torch.equal(yb.cpu(), cpu_yb)
    torch.testing.assert_close(xb.cpu(), cpu_xb)
    assert torch.bincount(ds.subset(5).y).tolist() == [5] * 10


# ----------------------------------------------------------------------------- digits and synthetic


def test_digits_splits_and_constants():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) == 1437 and len(test) == 360 and train.num_classes == 10
    assert (
        train.x.shape == (1437, 1, 8, 8)
        and train.x.dtype == torch.float32
        and train.scale == 1 / 16
    )
    assert train.x.max().item() == 16 and train.x.min().item() == 0
    assert torch.bincount(test.y).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    scaled = train.x.double() * train.scale
    assert scaled.mean().item() == pytest.approx(data.DIGITS_MEAN[0], abs=5e-5)
    assert scaled.std(unbiased=False).item() == pytest.approx(data.DIGITS_STD[0], abs=5e-5)
    assert torch.equal(load_dataset("digits", "test").x, test.x)


def class_centroids(ds: Dataset) -> torch.Tensor:
    return torch.stack([ds.x[ds.y == c].mean(0) for c in range(ds.num_classes)])


def test_synthetic_is_deterministic_per_seed():
    a, b = load_dataset("synthetic", seed=5), load_dataset("synthetic", seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert (
        a.x.shape == (1000, 1, 8, 8)
        and a.x.dtype == torch.float32
        and a.mean == (0.0,)
        and a.std == (1.0,)
    )
    assert torch.bincount(a.y).tolist() == [100] * 10
    assert not torch.equal(a.x, load_dataset("synthetic", seed=6).x)
    test = load_dataset("synthetic", "test", seed=5)
    assert not torch.equal(a.x, test.x)
    # one task whatever the seed: centroids of both splits and of other seeds differ by sampling
    # noise only (mean |diff| ~0.11, against ~1.1 between different mixtures)
    assert (class_centroids(a) - class_centroids(test)).abs().mean() < 0.2
    assert (
        class_centroids(a) - class_centroids(load_dataset("synthetic", "test", seed=6))
    ).abs().mean() < 0.2
    other_task = data.make_synthetic("test", seed=5, mixture_seed=1)
    assert (class_centroids(a) - class_centroids(other_task)).abs().mean() > 0.8
    small = data.make_synthetic("train", 3, shape=(3, 4, 4), num_classes=4, seed=0)
    assert (
        small.x.shape == (12, 3, 4, 4)
        and small.in_shape == (3, 4, 4)
        and small.y.tolist() == [0, 1, 2, 3] * 3
    )

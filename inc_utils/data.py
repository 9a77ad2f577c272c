"""Datasets held as whole tensors, normalised per batch, batched by index permutation.

Names (``DATASETS``): ``mnist``, ``fashion_mnist``, ``svhn``, ``cifar10`` read from disk;
``digits`` (scikit-learn's bundled 8x8 digits, needs no files, the offline default) and
``synthetic`` (a seeded Gaussian mixture for tests).

Images are stored raw, shape (N, C, H, W): uint8 for the 8-bit sources, float32 otherwise.
``Dataset.normalize`` maps a raw batch to ``(x * scale - mean) / std`` per channel, float32,
on the batch's device; there is no augmentation.

Files are looked for in ``data_search_path(root)``, in order: the explicit ``root``, the
directories in ``$INC_DATA_DIR`` (``os.pathsep``-separated), the user cache dir
(``$XDG_CACHE_HOME/inc_utils/data``, default ``~/.cache/inc_utils/data``), then
``/usr/share/datasets`` (Debian's ``dataset-fashion-mnist`` installs the IDX files in its
``fashion-mnist/`` folder). The first folder holding a whole split of a dataset is its only
source: both splits are read from it, never one from each of two copies. Inside each search
directory, a dataset's files may sit in these folders:

- ``mnist``: ``MNIST/raw`` (torchvision's layout) or ``mnist``, holding
  ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, each optionally ``.gz``;
- ``fashion_mnist``: ``FashionMNIST/raw``, ``fashion-mnist`` or ``fashion_mnist``, same files;
- ``cifar10``: ``cifar-10-batches-py`` with the pickles ``data_batch_1..5`` and ``test_batch``;
- ``svhn``: ``svhn`` or the search directory itself, with ``{train,test}_32x32.mat``.

Dataset files are untrusted input (they come from the internet and shared folders): reading
one never runs code. CIFAR pickles go through ``SafeUnpickler``, which builds only what real
batches hold (dicts, lists, bytes, ints, numpy arrays); SVHN's ``.mat`` files are parsed by
scipy (no code), reading only the numeric arrays ``X`` and ``y``; IDX files are raw bytes.
Every file is checked for shape, dtype and labels in ``[0, classes)``; a damaged or foreign
file raises ``DataFileError`` with one line naming it.

torchvision is used only to download (``download=True``), into ``root`` if given, else
into the cache dir; it unpickles only files whose md5 matches the published CIFAR-10 archive.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError, RunConfig, brief, one_line

DATASETS = ("mnist", "fashion_mnist", "svhn", "cifar10", "digits", "synthetic")
SPLITS = ("train", "test")
SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)
NUM_CLASSES = 10  # of every dataset on disk
#: IDX files this package reads: images (N, H, W) or (N, H, W, C), labels (N,); under 2 GiB.
MAX_IDX_DIMS, MAX_IDX_BYTES = 4, 2**31

# Mean/std of the digits train split (1,437 images, values / 16), over all pixels.
DIGITS_MEAN, DIGITS_STD = (0.3054,), (0.3761,)
DIGITS_TEST_SIZE = 360
SYNTHETIC_SHAPE = (1, 8, 8)
SYNTHETIC_N_PER_CLASS = 100


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the searched places, and downloading was not asked for."""


class DataFileError(ValueError):
    """A dataset file that is damaged, truncated, of another format, or holds anything but data."""


@dataclass(eq=False)
class Dataset:
    """A whole split in memory: raw images ``x`` (N, C, H, W) and int64 labels ``y`` (N,).

    ``scale`` maps raw values to [0, 1]; ``mean``/``std`` are per-channel constants of the
    [0, 1] values. With ``pad_to_32`` the normalised images are zero-padded (after
    normalising) to 32x32, and ``in_shape`` reports the padded shape.
    """

    x: torch.Tensor = field(repr=False)
    y: torch.Tensor = field(repr=False)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float
    num_classes: int
    name: str
    pad_to_32: bool = False
    _gain: torch.Tensor = field(init=False, repr=False, compare=False)
    _offset: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.x.ndim != 4 or self.y.shape != (len(self.x),):
            raise ValueError(
                f"expected x (N, C, H, W) and y (N,), "
                f"got {tuple(self.x.shape)} and {tuple(self.y.shape)}"
            )
        if not len(self.mean) == len(self.std) == self.x.shape[1]:
            raise ValueError(
                f"need one mean and std per channel ({self.x.shape[1]}), "
                f"got {self.mean}, {self.std}"
            )
        # normalize() computes x * gain - offset == (x * scale - mean) / std, per channel (C, 1, 1).
        mean = torch.tensor(self.mean, dtype=torch.float64).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float64).view(-1, 1, 1)
        self._gain = (self.scale / std).float().to(self.x.device)
        self._offset = (mean / std).float().to(self.x.device)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the normalised batches a model receives."""
        c, h, w = self.x.shape[1:]
        return (c, max(h, 32), max(w, 32)) if self.pad_to_32 else (c, h, w)

    def to(self, device: torch.device | str) -> "Dataset":
        """A copy with the data (and normalisation constants) on ``device``."""
        return replace(self, x=self.x.to(device), y=self.y.to(device))

    def normalize(self, xb: torch.Tensor) -> torch.Tensor:
        """Raw batch (B, C, H, W) -> float32 ``(xb * scale - mean) / std``, on ``xb``'s device."""
        out = xb.to(torch.float32) * self._gain.to(xb.device) - self._offset.to(xb.device)
        if self.pad_to_32:
            dh, dw = max(32 - out.shape[-2], 0), max(32 - out.shape[-1], 0)
            out = F.pad(out, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return out

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> "SizedIterator":
        """One pass of ``(normalised x float32, y)`` minibatches over the data, on its device.

        With ``shuffle`` the order is ``torch.randperm`` drawn from ``generator`` (on the
        generator's device, then moved); otherwise it is the stored order. The iterator has a
        ``len`` (the number of batches), so progress bars know their total.
        """
        n, device = len(self), self.x.device
        if shuffle:
            order = torch.randperm(
                n, generator=generator, device=generator.device if generator else device
            ).to(device)
        else:
            order = torch.arange(n, device=device)
        stop = n - n % batch_size if drop_last else n
        starts = range(0, stop, batch_size)
        pairs = (self._batch(order[start : start + batch_size]) for start in starts)
        return SizedIterator(pairs, len(starts))

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.normalize(self.x[idx]), self.y[idx]

    def subset(self, n_per_class: int, seed: int = 0) -> "Dataset":
        """A seeded class-balanced subset: exactly ``n_per_class`` images of every class."""
        idx = balanced_indices(self.y, n_per_class, self.num_classes, seed).to(self.x.device)
        return replace(self, x=self.x[idx], y=self.y[idx])


class SizedIterator:
    """An iterator that knows how many items it yields in all (``len``, for progress bars)."""

    def __init__(self, items: Iterator, length: int):
        self._items, self._length = items, length

    def __iter__(self) -> "SizedIterator":
        return self

    def __next__(self):
        return next(self._items)

    def __len__(self) -> int:
        return self._length


def balanced_indices(
    y: torch.Tensor, n_per_class: int, num_classes: int, seed: int = 0
) -> torch.Tensor:
    """Sorted indices (num_classes * n_per_class,): ``n_per_class`` random items of each class."""
    labels = y.cpu()
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        if len(members) < n_per_class:
            raise ConfigError(
                f"n_per_class: class {c} has {len(members)} examples, fewer than the "
                f"{n_per_class} asked for"
            )
        picked.append(members[torch.randperm(len(members), generator=generator)[:n_per_class]])
    return torch.cat(picked).sort().values


# ----------------------------------------------------------------------------- file formats


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a native-endian array of the shape in its header.

    The header is checked before the body is read (at most ``MAX_IDX_DIMS`` dimensions, the
    size it promises no larger than ``MAX_IDX_BYTES``), so a small crafted file cannot make
    this read gigabytes."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in dtypes:
                raise DataFileError(f"{path} is not an IDX file (bad magic {head[:4]!r})")
            dtype, ndim = np.dtype(dtypes[head[2]]), head[3]
            if not 1 <= ndim <= MAX_IDX_DIMS:
                raise DataFileError(f"{path}: IDX header has {ndim} dimensions (1 to {MAX_IDX_DIMS} expected)")
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataFileError(f"{path}: truncated IDX header ({4 + len(dims)} bytes)")
            shape = tuple(int(d) for d in np.frombuffer(dims, ">u4", ndim))
            size = dtype.itemsize * math.prod(shape)  # Python ints: no overflow
            if size > MAX_IDX_BYTES:
                raise DataFileError(f"{path}: header says shape {shape}, {size:,} bytes; more than "
                                    f"{MAX_IDX_BYTES:,} is not a dataset this package reads")
            body = f.read(size + 1)
    except (OSError, EOFError, zlib.error) as err:  # truncated, damaged, or not gzip at all
        raise DataFileError(f"{path}: cannot read ({one_line(err)})") from None
    if len(body) != size:
        raise DataFileError(f"{path}: header says shape {shape} but the file has "
                            f"{4 + 4 * ndim + len(body)}{'+' if len(body) > size else ''} bytes")
    return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _locate_idx(directory: Path, split: str) -> list[Path] | None:
    prefix = "train" if split == "train" else "t10k"
    found = []
    for stem in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        candidates = [p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()]
        if not candidates:
            return None
        found.append(candidates[0])
    return found


def _read_idx_pair(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.shape != (len(images),):
        raise DataFileError(f"{paths[0]} and {paths[1].name}: images {images.shape} and labels "
                            f"{labels.shape} do not match")
    if images.dtype != np.uint8 or labels.dtype.kind not in "iu":
        raise DataFileError(f"{paths[0].parent}: expected uint8 images and integer labels, "
                            f"got {images.dtype} and {labels.dtype}")
    return images[:, None], labels


def _locate_cifar10(directory: Path, split: str) -> list[Path] | None:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    paths = [directory / name for name in names]
    return paths if all(p.is_file() for p in paths) else None


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only containers, bytes, strings, numbers and numpy arrays.

    Plain ``pickle.load`` calls whatever a file names (``os.system`` included); this one
    resolves only the few numpy callables that rebuild an array (``_reconstruct``,
    ``_frombuffer``, ``ndarray``, ``dtype``) and ``_codecs.encode`` (bytes pickled by Python 3
    at protocol 2), and refuses every other global with ``DataFileError``."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataFileError(f"refused to load {module}.{name}: a data file may hold only arrays")
        with warnings.catch_warnings():  # numpy 2 warns on the numpy.core names old pickles use
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: a pickled dict with ``data`` uint8 (N, 3072) and ``labels`` (N,)."""
    try:
        batch = SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except DataFileError as err:
        raise DataFileError(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise DataFileError(f"{path}: not a CIFAR-10 batch ({type(err).__name__}: {err})") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32 and isinstance(labels, list) and len(labels) == len(data)
            and all(type(label) is int for label in labels)):
        raise DataFileError(f"{path}: not a CIFAR-10 batch (expected a dict with uint8 'data' "
                            "(N, 3072) and N integer 'labels')")
    if labels and not 0 <= min(labels) <= max(labels) < NUM_CLASSES:  # before int64: 2**70 would overflow
        raise DataFileError(f"{path}: labels must lie in [0, {NUM_CLASSES}), found {brief(min(labels))}.."
                            f"{brief(max(labels))}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _read_cifar10(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*(_read_cifar_batch(path) for path in paths))
    return np.concatenate(images), np.concatenate(labels)


def _locate_svhn(directory: Path, split: str) -> list[Path] | None:
    path = directory / f"{split}_32x32.mat"
    return [path] if path.is_file() else None


def _read_svhn(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    path = paths[0]
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    except Exception as err:  # noqa: BLE001 - scipy raises many types for damaged files
        raise DataFileError(f"{path}: not a readable .mat file ({type(err).__name__}: {err})") from None
    x, y = mat.get("X"), mat.get("y")
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 4 and x.shape[:3] == (32, 32, 3)
            and isinstance(y, np.ndarray) and y.dtype.kind in "iuf" and y.size == x.shape[3]):
        raise DataFileError(f"{path}: not an SVHN file (expected uint8 'X' (32, 32, 3, N) and N numeric 'y')")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0  # SVHN stores the digit 0 as label 10
    return images, labels


@dataclass(frozen=True)
class _FileSource:
    """How to find, read and normalise one on-disk 8-bit dataset."""

    folders: tuple[str, ...]  # relative to each search directory
    locate: Callable[[Path, str], list[Path] | None]  # the split's files in a folder, or None
    read: Callable[[list[Path]], tuple[np.ndarray, np.ndarray]]  # -> x (N, C, H, W) uint8, y (N,)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    how_to_get: str = ""


_FILE_SOURCES = {
    "mnist": _FileSource(("MNIST/raw", "mnist"), _locate_idx, _read_idx_pair, (0.1307,), (0.3081,)),
    "fashion_mnist": _FileSource(
        ("FashionMNIST/raw", "fashion-mnist", "fashion_mnist"),
        _locate_idx,
        _read_idx_pair,
        (0.2860,),
        (0.3530,),
        how_to_get="on Debian/Ubuntu `sudo apt-get install dataset-fashion-mnist`; ",
    ),
    "cifar10": _FileSource(
        ("cifar-10-batches-py",),
        _locate_cifar10,
        _read_cifar10,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
    "svhn": _FileSource(
        ("svhn", "."), _locate_svhn, _read_svhn, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
    ),
}


# ----------------------------------------------------------------------------- finding files


def cache_dir() -> Path:
    """The user's dataset cache, ``$XDG_CACHE_HOME/inc_utils/data`` (``~/.cache/...`` if unset)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inc_utils" / "data"


def data_search_path(root: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for dataset files, in order (see the module docstring)."""
    explicit = [Path(root).expanduser()] if root is not None else []
    from_env = [
        Path(p).expanduser() for p in os.environ.get("INC_DATA_DIR", "").split(os.pathsep) if p
    ]
    return [*explicit, *from_env, cache_dir(), *SYSTEM_DATA_DIRS]


def _candidate_folders(name: str, root: str | os.PathLike | None) -> list[Path]:
    return [
        base / folder for base in data_search_path(root) for folder in _FILE_SOURCES[name].folders
    ]


def _find_files(name: str, split: str, root: str | os.PathLike | None) -> list[Path] | None:
    """``split``'s files in the dataset's folder: the first searched folder holding a whole split.

    Both splits of a run come from that one folder; if it lacks ``split``, no later place is
    tried (mixing a train split from one copy with a test split from another is an error).
    """
    source = _FILE_SOURCES[name]
    for folder in _candidate_folders(name, root):
        if any(source.locate(folder, other) for other in SPLITS):
            paths = source.locate(folder, split)
            if paths is None:
                raise DatasetNotFoundError(
                    f"dataset {name!r}: {folder} holds the other split but not the {split} split; "
                    "put both splits in one folder (later places were not searched, so the splits "
                    "never come from two copies)")
            return paths
    return None


def _download(name: str, split: str, dest: Path) -> None:
    """Fetch ``name`` with torchvision into ``dest``, in a layout ``_find_files`` accepts."""
    import torchvision.datasets as tvd

    if name == "svhn":
        tvd.SVHN(dest / "svhn", split=split, download=True)
    else:
        fetcher = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}
        fetcher[name](dest, train=split == "train", download=True)


def _not_found(name: str, split: str, root: str | os.PathLike | None) -> DatasetNotFoundError:
    looked_in = ", ".join(str(p) for p in _candidate_folders(name, root))
    return DatasetNotFoundError(
        f"dataset {name!r} ({split} split) not found; looked in: {looked_in}. "
        f"To provide it: pass download=True, or --download on the command line (needs internet; "
        f"saves to {root or cache_dir()}); "
        f"{_FILE_SOURCES[name].how_to_get}"
        "or put the files in one of the folders above, e.g. under a directory named by "
        "INC_DATA_DIR or passed as root=."
    )


# ----------------------------------------------------------------------------- loading


def load_digits_split(split: str) -> Dataset:
    """scikit-learn's 8x8 digits, float32 in [0, 16]; stratified seed-0 split 1,437 / 360."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images,
        digits.target,
        test_size=DIGITS_TEST_SIZE,
        random_state=0,
        stratify=digits.target,
    )
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return Dataset(
        x=torch.from_numpy(x).float()[:, None],
        y=torch.from_numpy(y).long(),
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        scale=1 / 16,
        num_classes=10,
        name="digits",
    )


def make_synthetic(
    split: str = "train",
    n_per_class: int = SYNTHETIC_N_PER_CLASS,
    *,
    shape: tuple[int, int, int] = SYNTHETIC_SHAPE,
    num_classes: int = 10,
    noise: float = 1.0,
    seed: int = 0,
    mixture_seed: int = 0,
) -> Dataset:
    """A Gaussian mixture: class means ~ N(0, I) of ``shape``, samples = mean + ``noise`` * N(0, I).

    The class means depend only on ``mixture_seed`` (the task); ``seed`` and the split draw the
    samples, so runs with different seeds train on the same task and share its test split.
    Labels cycle 0, 1, ..., C-1, so every prefix of length k*C is balanced.
    """
    means = np.random.default_rng([mixture_seed, 0]).standard_normal((num_classes, *shape))
    rng = np.random.default_rng([mixture_seed, seed, 1 + SPLITS.index(split)])
    y = np.tile(np.arange(num_classes), n_per_class)
    x = means[y] + noise * rng.standard_normal((len(y), *shape))
    return Dataset(
        x=torch.from_numpy(x).float(),
        y=torch.from_numpy(y).long(),
        mean=(0.0,) * shape[0],
        std=(1.0,) * shape[0],
        scale=1.0,
        num_classes=num_classes,
        name="synthetic",
    )


def _load_files(name: str, split: str, root: str | os.PathLike | None, download: bool) -> Dataset:
    if root is not None and not download and not Path(root).expanduser().is_dir():
        raise DatasetNotFoundError(f"dataset {name!r}: data directory {root} does not exist (a typo?); nothing else "
                                   "was searched")
    paths = _find_files(name, split, root)
    if paths is None and download:
        _download(name, split, Path(root).expanduser() if root is not None else cache_dir())
        paths = _find_files(name, split, root)
    if paths is None:
        raise _not_found(name, split, root)
    source = _FILE_SOURCES[name]
    images, labels = source.read(paths)
    if not len(labels):
        raise DataFileError(f"{paths[-1]}: holds no {split} examples")
    if not 0 <= labels.min() <= labels.max() < NUM_CLASSES:
        raise DataFileError(f"{paths[-1]}: labels must lie in [0, {NUM_CLASSES}), "
                            f"found {labels.min()}..{labels.max()}")
    return Dataset(
        x=torch.from_numpy(images),
        y=torch.from_numpy(labels.astype(np.int64)),
        mean=source.mean,
        std=source.std,
        scale=1 / 255,
        num_classes=NUM_CLASSES,
        name=name,
    )


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    n_per_class: int | None = None,
    seed: int = 0,
    pad_to_32: bool = False,
) -> Dataset:
    """Load one split of a dataset in ``DATASETS`` onto the CPU.

    ``n_per_class`` takes a seeded class-balanced subset (for ``synthetic`` it is the number
    generated per class, default 100, and ``seed`` draws its samples). ``pad_to_32`` (MNIST
    and Fashion-MNIST only) zero-pads normalised 28x28 batches to 32x32. Raises
    ``DatasetNotFoundError`` when the files are nowhere in ``data_search_path(root)`` and
    ``download`` is False.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if pad_to_32 and name not in ("mnist", "fashion_mnist"):
        raise ValueError(
            f"pad_to_32 is for the 28x28 datasets mnist and fashion_mnist, not {name!r}"
        )
    if name == "synthetic":
        return make_synthetic(
            split, SYNTHETIC_N_PER_CLASS if n_per_class is None else n_per_class, seed=seed
        )
    dataset = (
        load_digits_split(split) if name == "digits" else _load_files(name, split, root, download)
    )
    dataset.pad_to_32 = pad_to_32
    return dataset.subset(n_per_class, seed) if n_per_class is not None else dataset


def load_splits(config: RunConfig, device: str, data_root: str | os.PathLike | None = None,
                download: bool = False) -> tuple[Dataset, Dataset]:
    """A run's train split (balanced subset if ``n_per_class``, seeded by the run's seed) and test
    split, on ``device``."""
    train = load_dataset(config.dataset, "train", root=data_root, download=download,
                         n_per_class=config.n_per_class, seed=config.seed)
    test = load_dataset(config.dataset, "test", root=data_root, download=download)
    if train.in_shape != test.in_shape:
        raise DataFileError(f"{config.dataset}: test images are {test.in_shape}, training images "
                            f"{train.in_shape}; the two splits come from different datasets")
    return train.to(device), test.to(device)

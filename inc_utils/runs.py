"""Run folders: layout, atomic writes, one writer per run, checkpoints with checksums, listing.

One folder per config, named by ``RunConfig.name`` (which ends in the config hash)::

    runs/<dataset>-<arch><depth>-<hash>/
        config.yaml        the full config (every field, defaults included)
        provenance.json    package versions, git commit, device, start time
        status.json        {"status": pending|running|stopped|done|diverged|failed, ...}
        log.csv            one row per epoch (see train.py)
        metrics.csv        NC measures per checkpoint (see measure.py)
        checkpoints/epoch_0010.pt  (+ epoch_0010.pt.sha256)
        .lock              held (flock) by the one process writing the run

Guarantees: every file is replaced atomically (readers see the old or the whole new file,
with the mode the umask gives); one process at a time writes a run (``Run.lock``, an OS
lock the kernel releases when the process dies, so a killed run never blocks the next);
a checkpoint is used only if it matches its checksum and loads; a folder whose files are
unreadable is listed as ``damaged`` instead of stopping ``list_runs``.

The runs directory is decided by ``settings`` (``INC_RUNS_DIR``, else ``<project>/runs``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
import yaml

from .config import ConfigError, RunConfig, brief, from_dict, one_line
from . import settings
from .settings import IncWarning, project_root

STATUSES = ("pending", "running", "stopped", "done", "diverged", "failed")
#: Shown by ``list_runs`` only: a folder with a file that cannot be read.
DAMAGED = "damaged"


class CorruptCheckpointError(RuntimeError):
    """A checkpoint that does not match its recorded checksum or cannot be loaded."""


class RunLockedError(RuntimeError):
    """Another process is writing this run."""


class DamagedRunError(ValueError):
    """A run folder whose config cannot be read."""


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The file gets mode 0666 less the umask, as ``open`` would give it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a full disk: say which file
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


#: Locks this process holds: lock file -> [open file, nesting depth].
_HELD: dict[Path, list] = {}


#: How long a writer retries a taken lock: ``Run.is_locked`` (``inc runs``) tests a lock by taking
#: it for microseconds, which must never make a writer starting in that instant give up.
LOCK_PATIENCE = 0.5


def _flock_patiently(handle) -> None:
    """``flock`` exclusively, retrying for ``LOCK_PATIENCE`` seconds; ``BlockingIOError`` if still held."""
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@contextlib.contextmanager
def hold_lock(path: Path, what: str):
    """Hold an exclusive OS lock (``flock``) on the file ``path`` for this process; nests.

    The kernel drops it when the process exits, however it dies, so a killed holder never
    blocks the next. Raises ``RunLockedError`` naming the holder (pid and command) if another
    process has it (after ``LOCK_PATIENCE`` seconds of retries). Yields True when this call took
    the lock (not nested in another)."""
    path = path.resolve()
    first = path not in _HELD
    if first:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
        try:
            _flock_patiently(handle)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunLockedError(f"{what} is being written by {holder}; wait for it to finish or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({' '.join(sys.argv)[:200]})")
        handle.flush()
        _HELD[path] = [handle, 0]
    _HELD[path][1] += 1
    try:
        yield first
    finally:
        _HELD[path][1] -= 1
        if not _HELD[path][1]:
            _HELD.pop(path)[0].close()  # closing the file releases the lock


@dataclass(frozen=True)
class Run:
    """A run folder (a ``Path`` or a string). Cheap to create; nothing is read until asked."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def for_config(cls, config: RunConfig, runs_dir: str | Path | None = None) -> "Run":
        return cls(settings.runs_dir(runs_dir) / config.name)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> RunConfig:
        """The run's config; ``DamagedRunError`` (one line) if config.yaml is unreadable."""
        path = self.path / "config.yaml"
        try:
            return from_dict(yaml.safe_load(path.read_text()))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError, TypeError) as err:
            raise DamagedRunError(f"{path}: damaged ({one_line(err)})") from None

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def create(self, config: RunConfig, device: str) -> None:
        """Write config (unless a readable one is there) and provenance."""
        try:
            self.config
        except DamagedRunError:
            atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        atomic_write_text(self.path / "provenance.json", json.dumps(provenance(device), indent=2))

    def remove_if_unstarted(self) -> None:
        """Remove the folder if it holds nothing but the lock and temporary files: what a start
        that failed before writing its config (a full or read-only disk) leaves behind."""
        if self.path.is_dir() and all(p.name == ".lock" or p.name.endswith(".tmp") for p in self.path.iterdir()):
            shutil.rmtree(self.path, ignore_errors=True)

    # one writer ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self):
        """Hold the run's lock (``hold_lock`` on ``.lock``) while writing it; nests within a process.

        Raises ``RunLockedError`` naming the holder if another process has it. Taking it first
        removes temporary files (``.*.tmp``) that interrupted writes left."""
        with hold_lock(self.path / ".lock", f"run {self.name}") as first:
            if first:
                for stale in (*self.path.glob(".*.tmp"), *self.checkpoint_dir.glob(".*.tmp")):
                    stale.unlink(missing_ok=True)
            yield self

    def is_locked(self) -> bool:
        """Whether some process (this one included) holds the run's lock now."""
        path = (self.path / ".lock").resolve()
        if path in _HELD:
            return True
        if not path.exists():
            return False
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    # status -------------------------------------------------------------------------
    def status(self) -> dict:
        """The last status written (``pending`` if none); ``damaged`` with a ``reason`` if unreadable."""
        path = self.path / "status.json"
        if not path.exists():
            return {"status": "pending"}
        try:
            status = json.loads(path.read_text())
            if isinstance(status, dict) and status.get("status") in STATUSES:
                return status
            reason = "no known status in it"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            reason = one_line(err)
        return {"status": DAMAGED, "reason": f"status.json: {reason}"}

    def set_status(self, status: str, **info) -> None:
        assert status in STATUSES, status
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(self.path / "status.json", json.dumps({"status": status, "time": stamp, **info}))

    @property
    def finished(self) -> bool:
        """Done or diverged: either way, training it again would do no new work."""
        return self.status()["status"] in ("done", "diverged")

    # log ----------------------------------------------------------------------------
    def read_log(self) -> pd.DataFrame:
        """The epoch log; empty if there is none. Raises ``DamagedRunError`` if it cannot be parsed."""
        path = self.path / "log.csv"
        if not path.exists():
            return pd.DataFrame()
        try:
            log = pd.read_csv(path)
        except (OSError, UnicodeDecodeError, ValueError) as err:  # pandas' parser errors are ValueErrors
            raise DamagedRunError(f"{path}: damaged ({one_line(err)})") from None
        if "epoch" not in log.columns:
            raise DamagedRunError(f"{path}: damaged (no 'epoch' column)")
        return log

    def write_log(self, rows: list[dict]) -> None:
        atomic_write_text(self.path / "log.csv", pd.DataFrame(rows).to_csv(index=False))

    # checkpoints --------------------------------------------------------------------
    def checkpoint_path(self, epoch: int) -> Path:
        return self.checkpoint_dir / f"epoch_{epoch:04d}.pt"

    def save_checkpoint(self, epoch: int, state: dict) -> Path:
        """Write ``state`` atomically, then its sha256 sidecar; a checkpoint is valid only with both."""
        return save_tensors(self.checkpoint_path(epoch), state)

    def checkpoint_epochs(self, warn: bool = False) -> list[int]:
        """Epochs with a checkpoint file and checksum sidecar (not yet verified), ascending.

        A checkpoint without its sidecar (a write cut short) is left out, with a warning if ``warn``."""
        if not self.checkpoint_dir.is_dir():
            return []
        epochs = []
        for path in self.checkpoint_dir.glob("epoch_*.pt"):
            if not _sidecar(path).exists():
                if warn:
                    warnings.warn(f"not using {path}: it has no checksum file {_sidecar(path).name}",
                                  IncWarning, stacklevel=3)
            elif path.stem.split("_")[1].isdigit():
                epochs.append(int(path.stem.split("_")[1]))
        return sorted(epochs)

    def load_checkpoint(self, epoch: int, map_location="cpu", like: torch.nn.Module | None = None,
                        resume: bool = False) -> dict:
        """Load and verify one checkpoint; ``CorruptCheckpointError`` if it is missing, does not
        match its checksum, does not load as weights (``torch.load(weights_only=True)``), or
        does not fit: weights of other names or shapes than ``like`` (the model the run's config
        builds) has, or, with ``resume``, training state missing or of the wrong kind."""
        path = self.checkpoint_path(epoch)
        state = load_tensors(path, map_location)
        problem = checkpoint_problem(state, like, resume)
        if problem:
            raise CorruptCheckpointError(f"{path}: {problem}")
        return state

    def latest_valid_checkpoint(self, map_location="cpu", like: torch.nn.Module | None = None,
                                resume: bool = False) -> dict | None:
        """The newest checkpoint that verifies, loads and fits (``load_checkpoint``); the others
        are reported and skipped."""
        for epoch in reversed(self.checkpoint_epochs(warn=True)):
            try:
                return self.load_checkpoint(epoch, map_location, like, resume)
            except CorruptCheckpointError as err:
                warnings.warn(f"skipping {err}", IncWarning, stacklevel=2)
        return None


#: What resuming reads from a checkpoint besides the weights, and of which kind (``train.checkpoint_state``).
RESUME_FIELDS = {"epoch": int, "optimizer": (dict, type(None)), "order_rng": torch.Tensor,
                 "torch_rng": torch.Tensor, "log": list, "lr": float}


def checkpoint_problem(state: object, like: torch.nn.Module | None = None, resume: bool = False) -> str | None:
    """What makes ``state`` unusable as a checkpoint of the model ``like`` (None: usable)."""
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        return "not a checkpoint of this package (no 'model' weights)"
    weights = state["model"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        return "not a checkpoint of this package ('model' holds more than named tensors)"
    if like is not None:
        expected = like.state_dict()
        if weights.keys() != expected.keys():
            extra, missing = sorted(weights.keys() - expected.keys()), sorted(expected.keys() - weights.keys())
            return (f"its weights do not fit the run's model (unexpected: {brief(extra)}, "
                    f"missing: {brief(missing)})")
        for key, tensor in expected.items():
            if weights[key].shape != tensor.shape or weights[key].dtype != tensor.dtype:
                return (f"weight {brief(key)} is {weights[key].dtype} {tuple(weights[key].shape)}, the run's "
                        f"model has {tensor.dtype} {tuple(tensor.shape)}")
    if resume:
        for key, kind in RESUME_FIELDS.items():
            if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
                return f"its {key!r} is missing or not of the kind training writes"
        if not all(isinstance(state[k], torch.Tensor) and state[k].dtype == torch.uint8 and state[k].dim() == 1
                   for k in ("order_rng", "torch_rng")):
            return "its random number generator states are not byte tensors"
        stack = state.get("stack", {"size": 1, "row": 0})
        if not (isinstance(stack, dict) and stack.keys() == {"size", "row"}
                and all(type(v) is int for v in stack.values()) and 0 <= stack["row"] < stack["size"] <= 10**4):
            return f"its batched-group record is not of the kind training writes: {brief(stack)}"
    return None


def save_checkpoint_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path``, then its sha256 sidecar ``path.sha256``."""
    atomic_write_bytes(path, data)
    atomic_write_text(_sidecar(path), hashlib.sha256(data).hexdigest())


def save_tensors(path: Path, obj) -> Path:
    """``torch.save`` of ``obj`` (tensors in dicts and lists) to ``path`` with its sha256 sidecar."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    save_checkpoint_bytes(path, buffer.getvalue())
    return path


def load_tensors(path: Path, map_location="cpu"):
    """What ``save_tensors`` wrote, verified against its sidecar and loaded as plain tensors
    (``torch.load(weights_only=True)``: a crafted pickle never runs); ``CorruptCheckpointError``
    (one line) if the file is unreadable, does not match its checksum or does not load."""
    try:
        data, expected = path.read_bytes(), _sidecar(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptCheckpointError(f"{path}: unreadable ({err})") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise CorruptCheckpointError(f"{path}: checksum mismatch (truncated or corrupted file)")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise CorruptCheckpointError(f"{path}: cannot be loaded ({one_line(err)})") from None


def find_run(name: str | Path, runs_dir: str | Path | None = None) -> Run:
    """A run given as a folder or as a name in ``runs_dir``; FileNotFoundError (one line) if neither."""
    path = Path(name)
    if not (path / "config.yaml").exists():
        path = settings.runs_dir(runs_dir) / name
    if not (path / "config.yaml").exists():
        raise FileNotFoundError(f"no run {str(name)!r} (looked for {path}/config.yaml); `inc runs` lists them")
    return Run(path)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def provenance(device: str) -> dict:
    """Where and with what a run was made: versions, git commit, device, time."""
    from importlib.metadata import version

    import numpy
    from . import __version__
    return {
        "inc_utils": __version__, "torch": torch.__version__, "torchvision": version("torchvision"),
        "numpy": numpy.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "device": device, "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
        "git_commit": git_commit(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def git_commit(short: bool = False) -> str | None:
    """The commit this package runs from (HEAD of its checkout), "+dirty" with uncommitted changes;
    None outside a git checkout. ``short``: the abbreviated hash."""
    root = project_root(Path(__file__).parent)
    if root is None:
        return None

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True).stdout

    try:
        head = git("rev-parse", *(["--short"] if short else []), "HEAD").strip()
        return head + ("+dirty" if git("status", "--porcelain").strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


LIST_COLUMNS = ["run", "status", "dataset", "arch", "width", "n_per_class", "lr", "weight_decay", "seed",
                "epochs", "train_acc", "test_acc", "reason"]


def list_runs(runs_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per run folder: name, status, key config fields, epochs logged, final accuracies.

    ``status`` is as written, except ``stopped`` (marked running, but no process holds its lock:
    it was killed; training it again resumes it) and ``damaged`` (a file cannot be read;
    ``reason`` says which). ``n_per_class`` is the training subset per class (empty: all)."""
    runs_dir = settings.runs_dir(runs_dir)
    return pd.DataFrame([_summary(Run(folder)) for folder in sorted(runs_dir.glob("*"))
                         if (folder / "config.yaml").exists()], columns=LIST_COLUMNS)


def _summary(run: Run) -> dict:
    row = {"run": run.name, "reason": ""}
    try:
        cfg, log, status = run.config, run.read_log(), run.status()
    except DamagedRunError as err:
        return {**row, "status": DAMAGED, "reason": str(err)}
    last = log.iloc[-1] if len(log) else {}
    state = status["status"]
    if state == "running" and not run.is_locked():
        state = "stopped"
    return {**row, "status": state, "reason": status.get("reason", ""), "dataset": cfg.dataset,
            "arch": f"{cfg.arch}{cfg.depth}", "width": cfg.width, "n_per_class": cfg.n_per_class,
            "lr": cfg.lr, "weight_decay": cfg.weight_decay, "seed": cfg.seed, "epochs": f"{len(log)}/{cfg.epochs}",
            "train_acc": last.get("train_acc"), "test_acc": last.get("test_acc")}

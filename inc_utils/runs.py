"""Run folders: layout, atomic writes, checkpoints with checksums, status and listing.

One folder per config, named by ``RunConfig.name`` (which ends in the config hash)::

    runs/<dataset>-<arch><depth>-<hash>/
        config.yaml        the full config (every field, defaults included)
        provenance.json    package versions, git commit, device, start time
        status.json        {"status": pending|running|done|diverged|failed, ...}
        log.csv            one row per epoch (see train.py)
        metrics.csv        NC measures per checkpoint (see measure.py)
        checkpoints/epoch_0010.pt  (+ epoch_0010.pt.sha256)

The runs directory is ``$INC_RUNS_DIR`` if set, else ``runs/`` in the project root
(the folder holding ``pyproject.toml`` above the working directory), else ``./runs``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
import yaml

from .config import RunConfig, from_dict

STATUSES = ("pending", "running", "done", "diverged", "failed")


class CorruptCheckpointError(RuntimeError):
    """A checkpoint whose bytes do not match its recorded checksum."""


def project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) that holds this project's pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "inc_utils").is_dir():
            return folder
    return None


def default_runs_dir() -> Path:
    if os.environ.get("INC_RUNS_DIR"):
        return Path(os.environ["INC_RUNS_DIR"])
    root = project_root()
    return (root or Path.cwd()) / "runs"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@dataclass(frozen=True)
class Run:
    """A run folder. Cheap to create; nothing is read until asked."""

    path: Path

    @classmethod
    def for_config(cls, config: RunConfig, runs_dir: str | Path | None = None) -> "Run":
        return cls(Path(runs_dir or default_runs_dir()) / config.name)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> RunConfig:
        return from_dict(yaml.safe_load((self.path / "config.yaml").read_text()))

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def create(self, config: RunConfig, device: str) -> None:
        """Write config and provenance; a no-op for the config if the folder already exists."""
        if not (self.path / "config.yaml").exists():
            atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        atomic_write_text(self.path / "provenance.json", json.dumps(provenance(device), indent=2))

    # status -------------------------------------------------------------------------
    def status(self) -> dict:
        path = self.path / "status.json"
        return json.loads(path.read_text()) if path.exists() else {"status": "pending"}

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
        path = self.path / "log.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    def write_log(self, rows: list[dict]) -> None:
        atomic_write_text(self.path / "log.csv", pd.DataFrame(rows).to_csv(index=False))

    # checkpoints --------------------------------------------------------------------
    def checkpoint_path(self, epoch: int) -> Path:
        return self.checkpoint_dir / f"epoch_{epoch:04d}.pt"

    def save_checkpoint(self, epoch: int, state: dict) -> Path:
        """Write ``state`` atomically, then its sha256 sidecar; a checkpoint is valid only with both."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        path = self.checkpoint_path(epoch)
        atomic_write_bytes(path, data)
        atomic_write_text(_sidecar(path), hashlib.sha256(data).hexdigest())
        return path

    def checkpoint_epochs(self) -> list[int]:
        """Epochs with a checkpoint file and checksum sidecar (not yet verified), ascending."""
        if not self.checkpoint_dir.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.checkpoint_dir.glob("epoch_*.pt")
                      if _sidecar(p).exists())

    def load_checkpoint(self, epoch: int, map_location="cpu") -> dict:
        """Load and verify one checkpoint; raise CorruptCheckpointError on any mismatch."""
        path = self.checkpoint_path(epoch)
        data, sidecar = path.read_bytes(), _sidecar(path)
        if not sidecar.exists() or hashlib.sha256(data).hexdigest() != sidecar.read_text().strip():
            raise CorruptCheckpointError(f"{path}: checksum mismatch (truncated or corrupted file)")
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)

    def latest_valid_checkpoint(self, map_location="cpu") -> dict | None:
        """The newest checkpoint that verifies; corrupted ones are reported and skipped."""
        for epoch in reversed(self.checkpoint_epochs()):
            try:
                return self.load_checkpoint(epoch, map_location)
            except CorruptCheckpointError as err:
                warnings.warn(f"skipping {err}", stacklevel=2)
        return None


def find_run(name: str | Path, runs_dir: str | Path | None = None) -> Run:
    """A run given as a folder or as a name in ``runs_dir``; FileNotFoundError (one line) if neither."""
    path = Path(name)
    if not (path / "config.yaml").exists():
        path = Path(runs_dir or default_runs_dir()) / name
    if not (path / "config.yaml").exists():
        raise FileNotFoundError(f"no run {str(name)!r} (looked for {path}/config.yaml); `inc runs` lists them")
    return Run(path)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def provenance(device: str) -> dict:
    """Where and with what a run was made: versions, git commit, device, time."""
    import numpy
    import torchvision
    from . import __version__
    return {
        "inc_utils": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": numpy.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "device": device, "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
        "git_commit": _git_commit(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _git_commit() -> str | None:
    root = project_root(Path(__file__).parent)
    if root is None:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def list_runs(runs_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per run folder: name, status, key config fields, epochs logged, final accuracies."""
    runs_dir = Path(runs_dir or default_runs_dir())
    rows = []
    for folder in sorted(p for p in runs_dir.glob("*") if (p / "config.yaml").exists()):
        run = Run(folder)
        cfg, log = run.config, run.read_log()
        last = log.iloc[-1] if len(log) else {}
        rows.append({"run": run.name, "status": run.status()["status"], "dataset": cfg.dataset,
                     "arch": f"{cfg.arch}{cfg.depth}", "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                     "seed": cfg.seed, "epochs": f"{len(log)}/{cfg.epochs}",
                     "train_acc": last.get("train_acc"), "test_acc": last.get("test_acc")})
    return pd.DataFrame(rows, columns=["run", "status", "dataset", "arch", "lr", "weight_decay", "seed",
                                       "epochs", "train_acc", "test_acc"])

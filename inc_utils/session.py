"""Where a chapter notebook runs: its parameters by scale, its output folder, its data and runs.

A chapter's setup lines call ``scale_parameters`` (a named scale replaces the values of its
parameters cell) and ``prepare`` (runs on Google Drive in Colab, datasets downloaded up
front). ``output_dir`` is the one place that decides where a chapter writes its figures
(``<output dir>/figures``) and claims (``<output dir>/claims/<chapter>.csv``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import ConfigError, read_yaml
from .runs import default_runs_dir, project_root

DRIVE_MOUNT = Path("/content/drive")
FILE_DATASETS = ("mnist", "fashion_mnist", "svhn", "cifar10")   # the ones torchvision can download


def in_colab() -> bool:
    """True inside a Google Colab runtime (its kernel imports ``google.colab`` at start)."""
    return "google.colab" in sys.modules


def params_dir() -> Path:
    """The ``params/`` folder: the checkout around the working directory, else the checkout the
    package is imported from, else the copy installed with the package (``pip install``)."""
    for root in (project_root(), project_root(Path(__file__).parent)):
        if root is not None and (root / "params").is_dir():
            return root / "params"
    return Path(__file__).parent / "params"


def scale_parameters(chapter: str, scale: str | None) -> dict:
    """The parameters of ``chapter`` (e.g. ``"01_intermediate_nc"``) at ``scale``; {} for None."""
    if scale is None:
        return {}
    folder = params_dir()
    path = folder / scale / f"{chapter}.yaml"
    if not path.is_file():
        scales = sorted(p.parent.name for p in folder.glob(f"*/{chapter}.yaml"))
        raise ConfigError(f"no parameters for {chapter} at scale {scale!r} in {folder}; "
                          f"scales with this chapter: {', '.join(scales) or 'none'}")
    return read_yaml(path)


def output_dir() -> Path:
    """Where a chapter writes: ``$INC_BUILD_DIR`` (``inc reproduce`` sets ``build/<scale>``), else
    ``build/lab`` in the project root, else ``build/lab`` under the working directory (Colab)."""
    if os.environ.get("INC_BUILD_DIR"):
        return Path(os.environ["INC_BUILD_DIR"])
    return (project_root(Path.cwd()) or Path.cwd()) / "build" / "lab"


def figures_dir() -> Path:
    """``$INC_FIGURES_DIR``, else ``<output dir>/figures``."""
    return Path(os.environ.get("INC_FIGURES_DIR") or output_dir() / "figures")


def drive_runs_dir(folder: str) -> Path:
    """Mount Google Drive (Colab asks for permission) and return ``MyDrive/<folder>/runs``."""
    if not in_colab():
        raise ConfigError("drive_folder is for Google Drive in Colab; elsewhere set INC_RUNS_DIR")
    from google.colab import drive
    drive.mount(str(DRIVE_MOUNT))
    return DRIVE_MOUNT / "MyDrive" / folder / "runs"


def prepare(params: dict, data_dir: str | None = None, download: bool | None = None,
            drive_folder: str | None = None) -> None:
    """A chapter's setup: keep its runs in ``drive_folder`` on Google Drive (so a dropped Colab
    session resumes from their checkpoints), download the datasets ``params`` train on when
    ``download`` (None: in Colab only), and print where runs and figures go."""
    from .data import SPLITS, load_dataset
    from .sweep import configs_in
    if drive_folder:
        os.environ["INC_RUNS_DIR"] = str(drive_runs_dir(drive_folder))
    if in_colab() if download is None else download:
        for name in sorted({c.dataset for c in configs_in(params)} & set(FILE_DATASETS)):
            for split in SPLITS:
                load_dataset(name, split, root=data_dir, download=True)
    print(f"runs: {default_runs_dir()}\nfigures: {figures_dir()}")

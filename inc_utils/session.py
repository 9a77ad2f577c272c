"""A chapter notebook's surroundings: its parameters by scale, its settings, its data, Colab's Drive.

A chapter's first code cell is one call, ``session.setup`` (see there). Where things are and how
the process runs is decided by ``settings``; this module only applies it to a notebook.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from . import settings
from .config import ConfigError, read_yaml
from .settings import project_root

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


def drive_runs_dir(folder: str) -> Path:
    """Mount Google Drive (Colab asks for permission) and return ``MyDrive/<folder>/runs``."""
    if not in_colab():
        raise ConfigError("drive_folder is for Google Drive in Colab; elsewhere set INC_RUNS_DIR")
    from google.colab import drive
    drive.mount(str(DRIVE_MOUNT))
    return DRIVE_MOUNT / "MyDrive" / folder / "runs"


def setup(chapter: str, namespace: dict) -> dict:
    """A chapter notebook's first cell, in one call: ``globals().update(session.setup("NN_name", globals()))``.

    ``namespace``: the notebook's names after its parameters cell, which must declare ``scale``,
    ``device``, ``data_dir``, ``download`` and ``drive_folder``. In order:

    1. ``scale`` (a folder under ``params/``) replaces the parameters it names (``scale_parameters``);
    2. the process's settings are applied (``settings.apply``: runs, build and figures folders,
       torch threads, progress bars), with the runs on Google Drive under ``drive_folder`` (Colab);
    3. other libraries' UserWarnings are silenced, the package's own (``settings.IncWarning``,
       e.g. a skipped damaged checkpoint) always shown;
    4. the datasets of the parameters' runs (``experiments``, ``experiment``, ``sweeps``) are
       downloaded when ``download`` (None: in Colab only);
    5. where runs and figures go, the device and the thread count are printed.

    Returns the names to update: the scale's parameters, ``device`` (resolved: ``"cpu"``,
    ``"cuda"``, ...), ``out_dir`` (the chapter's output folder: claims under ``out_dir / "claims"``)
    and ``figures_dir`` (for ``plots.save_figure``)."""
    scaled = scale_parameters(chapter, namespace["scale"])
    params = {**namespace, **scaled}
    drive = params["drive_folder"]
    applied = settings.apply(runs=drive_runs_dir(drive) if drive else None)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("always", category=settings.IncWarning)
    prepare(params, params["data_dir"], params["download"])
    device = settings.resolve_device(params["device"])
    threads = f"{applied.threads} torch thread{'s' if applied.threads > 1 else ''}"
    print(f"runs: {settings.shown(applied.runs)}\nfigures: {settings.shown(applied.figures)}\n"
          f"device: {device}, {threads}")
    return {**scaled, "device": device, "out_dir": applied.build,
            "figures_dir": applied.figures}


def prepare(params: dict, data_dir: str | None = None, download: bool | None = None) -> None:
    """Download the datasets ``params`` train on (``sweep.configs_in``) when ``download``
    (None: in Colab only), into ``data_dir`` (None: the user cache, see ``data``)."""
    from .data import SPLITS, load_dataset
    from .sweep import configs_in
    if in_colab() if download is None else download:
        for name in sorted({c.dataset for c in configs_in(params)} & set(FILE_DATASETS)):
            for split in SPLITS:
                load_dataset(name, split, root=data_dir, download=True)

"""Where things are and how a process runs: the one module that decides both.

Decided here, with one precedence rule, **argument > environment > default**:

==========  ===================  ==================================================================
setting     environment          default
==========  ===================  ==================================================================
project     (none)               the checkout holding the working directory, else the one this
                                 package was imported from, else none (``project_root``)
runs        ``INC_RUNS_DIR``     ``<project>/runs``, else ``./runs``
build       ``INC_BUILD_DIR``    ``<project>/build/lab``, else ``./build/lab``: where a chapter
                                 writes its claims (``<build>/claims``) and anything else it makes
figures     (none)               ``<build>/figures``
threads     ``INC_THREADS``      ``DEFAULT_THREADS`` = 1 torch CPU thread per process
progress    ``INC_PROGRESS``     on (``INC_PROGRESS=0``: off, for headless runs)
device      (none)               ``"auto"``: cuda when PyTorch sees one, else cpu
==========  ===================  ==================================================================

The settings are applied once per process at its boundary (``apply``): the command line ``inc``,
a notebook's first cell (``session.setup``), a sweep worker (``use`` with the parent's settings).
Applying sets torch's thread count, so it holds whatever a process then does, a training or
measurement run or only reading cached results. A process that never applies them (your own
script importing the package) reads its folders from the environment each time it asks
(``current``) and keeps torch's thread count as it is: call ``apply()`` there too.

Child processes (notebook kernels, sweep workers) get the applied settings through the
environment (``environment``) or as an argument; nothing here changes ``os.environ``.

Why one thread: on a CPU shared with other work one thread per process is often many times
faster than several (``benchmarks/threads.py``: 8x on a busy 2-core machine); on an idle
many-core machine raise it (``inc --threads N``, ``INC_THREADS=N``).

Data files are searched, not decided: ``data.data_search_path`` lists the places (``INC_DATA_DIR`` first).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .config import ConfigError, brief

RUNS_ENV, BUILD_ENV, THREADS_ENV, PROGRESS_ENV = "INC_RUNS_DIR", "INC_BUILD_DIR", "INC_THREADS", "INC_PROGRESS"
DEFAULT_THREADS = 1


class IncWarning(UserWarning):
    """A warning of this package (a skipped damaged checkpoint, a cache measured again): notebooks
    silence other libraries' UserWarnings but always show these."""


@dataclass(frozen=True)
class Settings:
    """The resolved settings of a process (see the module docstring)."""

    project: Path | None
    runs: Path
    build: Path
    threads: int
    progress: bool

    @property
    def figures(self) -> Path:
        return self.build / "figures"

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


def project_root(start: Path | None = None) -> Path | None:
    """The project folder (holding ``pyproject.toml`` and ``inc_utils/``): the nearest at or
    above ``start`` (default: the working directory), else, without ``start``, the one this
    package was imported from (a clone or an editable install); None if neither."""
    places = [start or Path.cwd()] + ([] if start else [Path(__file__).parent])
    for place in places:
        here = place.resolve()
        for folder in (here, *here.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "inc_utils").is_dir():
                return folder
    return None


def _threads(text: str) -> int:
    text = text.strip()
    if not (text.isdigit() and int(text) >= 1):
        raise ConfigError(f"{THREADS_ENV}={brief(text)}: expected a positive integer")
    return int(text)


def _capped(threads: int) -> int:
    """``threads`` if at most 4 per core (more only slows torch down, or exhausts the machine)."""
    most = 4 * (os.cpu_count() or 1)
    if threads > most:
        raise ConfigError(f"{threads} threads: at most {most} (4 per core) are allowed; one per process is "
                          f"often fastest")
    return threads


def resolve(*, runs: str | Path | None = None, build: str | Path | None = None, threads: int | None = None,
            progress: bool | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from the arguments given, else ``environ`` (default ``os.environ``), else the
    defaults. Nothing is applied."""
    env = os.environ if environ is None else environ
    project = project_root()
    base = project or Path.cwd()
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {brief(threads)}")
    return Settings(
        project=project,
        runs=Path(runs or env.get(RUNS_ENV) or base / "runs"),
        build=Path(build or env.get(BUILD_ENV) or base / "build" / "lab"),
        threads=_capped(threads if threads is not None else _threads(env[THREADS_ENV])
                        if env.get(THREADS_ENV, "").strip() else DEFAULT_THREADS),
        progress=progress if progress is not None else env.get(PROGRESS_ENV, "1") != "0")


_applied: Settings | None = None


def use(settings: Settings) -> Settings:
    """Make ``settings`` this process's: set torch's CPU thread count; ``current`` returns them."""
    import torch
    global _applied
    torch.set_num_threads(settings.threads)
    _applied = settings
    return settings


def apply(**arguments) -> Settings:
    """``use(resolve(**arguments))``: a process boundary's one call."""
    return use(resolve(**arguments))


def current() -> Settings:
    """The applied settings, else those the environment gives now (``resolve()``)."""
    return _applied or resolve()


def environment(settings: Settings | None = None) -> dict[str, str]:
    """The environment variables that make a child process resolve ``settings`` (default ``current()``)."""
    s = settings or current()
    return {RUNS_ENV: str(s.runs), BUILD_ENV: str(s.build), THREADS_ENV: str(s.threads),
            PROGRESS_ENV: "1" if s.progress else "0"}


def runs_dir(runs: str | Path | None = None) -> Path:
    """``runs`` if given, else the current settings' runs folder."""
    return Path(runs) if runs else current().runs


def progress_enabled(progress: bool | None = None) -> bool:
    """``progress`` if given, else the current settings' choice."""
    return current().progress if progress is None else progress


def resolve_device(device: str | None = None) -> str:
    """``None``/``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; any other name is checked
    (a ``ConfigError`` for a malformed name or an accelerator PyTorch cannot see)."""
    import torch
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as err:
        raise ConfigError(f"device {device!r}: {err}; use 'auto', 'cpu' or 'cuda'") from None
    available = {"cpu": lambda: True, "cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if kind not in available:
        raise ConfigError(f"device {device!r}: this package trains on 'cpu', 'cuda' or 'mps' only")
    if not available[kind]():
        raise ConfigError(f"device {device!r}: PyTorch sees no {kind} device here; use 'auto' or 'cpu'")
    return device


# A build of scale S is written into a fresh folder ``build/.S.building-XXXX`` and swapped in as
# ``build/S`` when every chapter has run (``reproduce``).
def staging_prefix(scale: str) -> str:
    """The name prefix of the fresh folder a build of ``scale`` is written into."""
    return f".{scale}.building-"


def shown(path: Path, settings: Settings | None = None) -> str:
    """``path`` as a user should read it: relative to the project when inside it, with a build's
    fresh folder (``build/.cpu.building-XXXX``) named as the place it is swapped in to (``build/cpu``)."""
    project = (settings or current()).project
    parts = list(Path(path).parts)
    for i, part in enumerate(parts):
        if part.startswith(".") and ".building-" in part:
            parts[i] = part[1:].split(".building-")[0]
    final = Path(*parts)
    if project is not None and final.is_absolute():
        try:
            return str(final.relative_to(project))
        except ValueError:
            pass
    return str(final)

"""Test session environment: no progress bars, a fresh runs directory, figures off-screen.

Set before any notebook kernel starts, so nbval's kernels inherit it: the reference notebooks
retrain their runs from scratch in a temporary folder instead of reading the user's ``runs/``.
"""
import atexit
import os
import shutil
import tempfile

import pytest

_session = tempfile.mkdtemp(prefix="inc-tests-")
atexit.register(shutil.rmtree, _session, ignore_errors=True)
os.environ["INC_RUNS_DIR"] = os.path.join(_session, "runs")
os.environ["INC_BUILD_DIR"] = os.path.join(_session, "build")       # claims and figures of chapters
os.environ["INC_PROGRESS"] = "0"
# One torch thread (the package default) in this process, its subprocesses and the notebook kernels,
# unless INC_THREADS says otherwise: bitwise comparisons between processes need the same thread count
# in each. The notebook checks hold at 1 and 2 threads on every code path measured
# (tests/notebooks/README.md).
os.environ["OMP_NUM_THREADS"] = os.environ["INC_THREADS"] = os.environ.get("INC_THREADS", "1")
os.environ["MPLBACKEND"] = "Agg"


@pytest.fixture(autouse=True)
def settings_of_the_environment(monkeypatch):
    """Every test starts with no settings applied (``inc`` and ``session.setup`` apply theirs to the
    process: ``settings.current()`` then reads the environment) and gets torch's thread count back."""
    import torch

    from inc_utils import settings
    monkeypatch.setattr(settings, "_applied", None)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

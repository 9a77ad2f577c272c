"""Stopping on signals, however the process was started.

``inc`` calls ``install()`` first thing, at the process boundary where it also applies the
``settings``: SIGINT (Ctrl-C, ``kill -INT``) and SIGTERM (``kill``, ``timeout``, SLURM) both
raise ``KeyboardInterrupt`` in the main thread, so training marks its runs ``stopped`` and
keeps their checkpoints; a process started in the background, where the shell leaves SIGINT
ignored, stops on SIGINT as well. After the first signal both are ignored, so a second Ctrl-C
cannot cut the cleanup short (SIGKILL still ends the process at once).
``received()`` tells which signal arrived: the exit status is 128 + its number (130, 143).

Sweep workers (``worker_init``, for a process pool) ignore SIGINT: their parent decides to
stop and sends them SIGTERM. They also get SIGTERM when the parent dies, however it dies
(Linux ``PR_SET_PDEATHSIG``), so no worker outlives its sweep; a worker that is between
tasks exits at once (``run_in_worker``), one in a task stops it as above and exits.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

_received: int | None = None
_busy = False


def _stop(signum, frame) -> None:
    global _received
    if _received is None:
        _received = signum
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the cleanup that follows runs to its end
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def install() -> dict:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` once (also if SIGINT was ignored at start).

    Returns the handlers it replaced, for ``restore``."""
    global _received
    _received = None
    return {signum: signal.signal(signum, _stop) for signum in (signal.SIGINT, signal.SIGTERM)}


def restore(handlers: dict) -> None:
    """Put back the handlers ``install`` replaced."""
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def received() -> int:
    """The signal that stopped this process (SIGINT if none was recorded: a plain KeyboardInterrupt)."""
    return _received or signal.SIGINT


def exit_status() -> int:
    """128 + the stopping signal's number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + received()


def _worker_term(signum, frame) -> None:
    if not _busy:
        os._exit(128 + signum)  # idle between tasks: nothing to save
    _stop(signum, frame)


def worker_init(parent: int) -> None:
    """Pool initializer: SIGINT ignored, SIGTERM stops, and SIGTERM when the parent process
    ``parent`` dies (Linux); exits at once if it is already gone. (The parent's settings are
    applied by the task itself, ``sweep.TrainTask``, as in every other kind of worker.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_term)
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(128 + signal.SIGTERM)


def run_in_worker(task, item):
    """Call ``task(item)`` in a pool worker; a stopping signal ends the worker after the task has
    marked its runs (the pool has no use for a half-done result)."""
    global _busy
    _busy = True
    try:
        return task(item)
    except KeyboardInterrupt:
        sys.stdout.flush()
        os._exit(exit_status())
    finally:
        _busy = False

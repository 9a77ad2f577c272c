"""Train one run: SGD on MSE to one-hot targets, multi-step lr decay, checkpoints, resume.

``train(config)`` is idempotent: a finished run is a cache hit, an interrupted one resumes
from its newest valid checkpoint and, on CPU, ends bitwise equal to an uninterrupted run
(model, optimizer, data-order generator and RNG states are all checkpointed). A checkpoint
written by a batched group resumes in a stack of that group's shape (``batched.resume_in_stack``).
A non-finite loss stops the run and marks it ``diverged`` instead of raising, so a sweep
goes on. One process at a time trains a run (``Run.lock``); a run folder is created only
once its data loaded and its model fits in memory, so a failed start leaves nothing behind.

Threads: training and measuring use ``configure_threads``: ``$INC_THREADS`` torch threads,
default ``DEFAULT_THREADS`` = 1. On a CPU shared with other work one thread per process is
often many times faster than several (``benchmarks/threads.py``: 8x on a busy 2-core
machine); on an idle many-core machine raise it (``inc --threads N``, ``INC_THREADS=N``).

Log columns (one row per epoch): ``epoch, lr, loss`` (mean training loss over the epoch's
minibatches, train mode), ``train_acc, test_acc`` (eval mode, whole splits; NaN on epochs
skipped by ``eval_every``), ``seconds`` (wall time of the epoch).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import ConfigError, RunConfig, brief, one_line
from .data import DataFileError, Dataset, load_dataset
from .models import build_model
from .runs import Run

THREADS_ENV, DEFAULT_THREADS = "INC_THREADS", 1
_threads_set = False


def configure_threads(threads: int | None = None) -> int:
    """Set torch's CPU thread count to ``threads``, else ``$INC_THREADS``, else ``DEFAULT_THREADS``.

    Called by every training and measuring entry point; without ``threads`` it acts once per
    process, so a later ``torch.set_num_threads`` of your own stands. Returns the count in use."""
    global _threads_set
    if threads is None and _threads_set:
        return torch.get_num_threads()
    if threads is None:
        text = os.environ.get(THREADS_ENV, "").strip()
        if text and not (text.isdigit() and int(text) >= 1):
            raise ConfigError(f"{THREADS_ENV}={text!r}: expected a positive integer")
        threads = int(text) if text else DEFAULT_THREADS
    most = 4 * (os.cpu_count() or 1)
    if threads > most:
        raise ConfigError(f"{threads} threads: at most {most} (4 per core) are allowed; one per process is "
                          f"often fastest")
    torch.set_num_threads(threads)
    _threads_set = True
    return threads


def resolve_device(device: str | None = None) -> str:
    """``None``/``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; any other name is checked
    (a ``ConfigError`` for a malformed name or an accelerator PyTorch cannot see)."""
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


def progress_enabled(progress: bool | None) -> bool:
    """Progress bars on unless turned off here or by ``INC_PROGRESS=0`` (headless runs)."""
    return os.environ.get("INC_PROGRESS", "1") != "0" if progress is None else progress


def lr_at(epoch: int, config: RunConfig) -> float:
    """Learning rate used during ``epoch`` (1-based): linear warm-up, then x lr_factor per passed milestone."""
    if epoch <= config.warmup_epochs:
        return config.lr * epoch / config.warmup_epochs
    return config.lr * config.lr_factor ** sum(epoch > m for m in config.lr_milestones)


def loss_fn(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Batch-mean loss. ``mse``: 1/2 ||logits - onehot||^2 per sample; ``mse_mean``: torch MSELoss; ``ce``."""
    if kind == "ce":
        return F.cross_entropy(logits, y)
    target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    if kind == "mse":
        return 0.5 * (logits - target).pow(2).sum(1).mean()
    return F.mse_loss(logits, target)


def build_for(config: RunConfig, data: Dataset) -> nn.Module:
    """The config's model for ``data``'s input shape and class count (initialised from the global RNG)."""
    return build_model(config.arch, config.depth, in_shape=data.in_shape, num_classes=data.num_classes,
                       width=config.width, bias=config.bias, cifar_stem=config.cifar_stem,
                       first_relu=config.first_relu)


def load_splits(config: RunConfig, device: str, data_root: str | Path | None = None,
                download: bool = False) -> tuple[Dataset, Dataset]:
    """Train split (balanced subset if ``n_per_class``, seeded by the run's seed) and test split, on ``device``."""
    train = load_dataset(config.dataset, "train", root=data_root, download=download,
                         n_per_class=config.n_per_class, seed=config.seed)
    test = load_dataset(config.dataset, "test", root=data_root, download=download)
    if train.in_shape != test.in_shape:
        raise DataFileError(f"{config.dataset}: test images are {test.in_shape}, training images "
                            f"{train.in_shape}; the two splits come from different datasets")
    return train.to(device), test.to(device)


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, batch_size: int = 1024) -> float:
    """Eval-mode accuracy over the whole split; leaves the model in eval mode."""
    model.eval()
    correct = sum((model(x).argmax(1) == y).sum().item() for x, y in data.batches(batch_size))
    return correct / len(data)


def check_fits(config: RunConfig, data: Dataset, device: str, models: int = 1) -> None:
    """``ConfigError`` if ``models`` copies of the config's model cannot be built or held in
    ``device``'s memory (weights, gradients and momenta: three float32 copies), checked on the
    meta device before anything is allocated."""
    try:
        with torch.device("meta"):
            size = sum(p.numel() for p in build_for(config, data).parameters())
    except (RuntimeError, ValueError, TypeError, RecursionError, OverflowError, MemoryError) as err:
        raise ConfigError(f"cannot build {config.arch}{config.depth} (width {brief(config.width)}): "
                          f"{one_line(err)}") from None
    need = 3 * 4 * size * models
    if device.startswith("cuda"):
        have = torch.cuda.mem_get_info(torch.device(device))[1]
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise ConfigError(f"{config.arch}{config.depth} of width {config.width} has {size:,} parameters; "
                          f"training {models} needs {need / 2**30:.1f} GiB, {device} has {have / 2**30:.1f} GiB")


def checkpoint_state(epoch: int, model: dict, optimizer: dict, order_rng: torch.Tensor, torch_rng: torch.Tensor,
                     log: list[dict], lr: float, stack: dict | None = None) -> dict:
    """The one checkpoint format (also written by batched.py): state_dicts of the model and of
    torch.optim.SGD, the data-order generator and global RNG states, the log so far, and the lr;
    a member of a batched group also records its ``stack`` (``{"size": K, "row": k}``)."""
    return {"epoch": epoch, "model": model, "optimizer": optimizer, "order_rng": order_rng,
            "torch_rng": torch_rng, "log": log, "lr": lr, **({"stack": stack} if stack else {})}


def train(config: RunConfig, *, runs_dir: str | Path | None = None, device: str | None = None,
          data_root: str | Path | None = None, download: bool = False, progress: bool | None = None) -> Run:
    """Train ``config`` into its run folder (or return it at once if already finished).

    ``download=True`` lets torchvision fetch a missing dataset (online only). Raises
    ``RunLockedError`` if another process is training the same run."""
    run = Run.for_config(config, runs_dir)
    if run.finished:
        return run
    configure_threads()
    device = resolve_device(device)
    train_set, test_set = load_splits(config, device, data_root, download)
    check_fits(config, train_set, device)
    with run.lock():
        if not run.finished:  # another process may have finished it while we loaded the data
            run.create(config, device)
            _fit(run, config, train_set, test_set, device, progress)
    return run


def _fit(run: Run, config: RunConfig, train_set: Dataset, test_set: Dataset, device: str,
         progress: bool | None) -> None:
    """The training loop of ``train``, from the run's newest valid checkpoint; the caller holds the lock."""
    torch.manual_seed(config.seed)
    model = build_for(config, train_set).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    order = torch.Generator(device=device).manual_seed(config.seed)
    log: list[dict] = []
    start = 0
    state = run.latest_valid_checkpoint(map_location=device, like=model, resume=True)
    if state is not None and "stack" in state:  # written by a batched group: resume in its shape
        from .batched import resume_in_stack
        resume_in_stack(config, run, train_set, test_set, device, state["stack"]["size"], state["stack"]["row"],
                        progress)
        return
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        order.set_state(state["order_rng"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        log, start = list(state["log"]), state["epoch"]
    run.set_status("running", epoch=start)

    checkpoint_epochs = set(config.checkpoint_epochs())
    bar = tqdm(range(start + 1, config.epochs + 1), desc=run.name, initial=start, total=config.epochs,
               disable=not progress_enabled(progress), leave=False)
    try:
        for epoch in bar:
            tic = time.perf_counter()
            lr = lr_at(epoch, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = train_epoch(model, optimizer, train_set, config, order)
            row = {"epoch": epoch, "lr": lr, "loss": loss, "train_acc": math.nan, "test_acc": math.nan}
            if math.isfinite(loss) and (epoch % config.eval_every == 0 or epoch == config.epochs):
                row["train_acc"], row["test_acc"] = accuracy(model, train_set), accuracy(model, test_set)
            row["seconds"] = time.perf_counter() - tic
            log.append(row)
            run.write_log(log)
            if not math.isfinite(loss):
                run.set_status("diverged", epoch=epoch, loss=str(loss))
                return
            if math.isfinite(row["test_acc"]):
                bar.set_postfix(loss=f"{loss:.4f}", test_acc=f"{row['test_acc']:.3f}")
            if epoch in checkpoint_epochs:
                run.save_checkpoint(epoch, checkpoint_state(epoch, model.state_dict(), optimizer.state_dict(),
                                                            order.get_state(), torch.get_rng_state(), log, lr))
    except BaseException as err:
        run.set_status(**stopped_or_failed(err))
        raise
    finally:
        bar.close()
    run.set_status("done", epoch=config.epochs)


def stopped_or_failed(err: BaseException) -> dict:
    """The status (``Run.set_status`` arguments) of a run whose training ``err`` ended:
    ``stopped`` on Ctrl-C, else ``failed``."""
    if isinstance(err, KeyboardInterrupt):
        return {"status": "stopped", "error": "interrupted (Ctrl-C); training it again resumes it"}
    return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: Dataset, config: RunConfig,
                order: torch.Generator) -> float:
    """One pass of minibatch SGD in a seeded order; returns the mean batch loss (inf/nan if diverged)."""
    model.train()
    total = torch.zeros((), device=data.y.device, dtype=torch.float64)
    steps = 0
    for x, y in data.batches(config.batch_size, shuffle=True, generator=order):
        if len(y) < 2:  # BatchNorm cannot train on one sample; happens only when N % batch_size == 1
            continue
        loss = loss_fn(model(x), y, config.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        steps += 1
    return (total / steps).item()

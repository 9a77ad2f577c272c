"""Train one run: SGD on MSE to one-hot targets, multi-step lr decay, checkpoints, resume.

``train(config)`` is idempotent: a finished run is a cache hit, an interrupted one resumes
from its newest valid checkpoint and, on CPU, ends bitwise equal to an uninterrupted run
(model, optimizer, data-order generator and RNG states are all checkpointed). A checkpoint
written by a batched group resumes in a stack of that group's shape (``batched.resume_in_stack``).
A non-finite loss stops the run and marks it ``diverged`` instead of raising, so a sweep
goes on. One process at a time trains a run (``Run.lock``); a run folder is created only
once its data loaded and its model fits in memory, so a failed start leaves nothing behind.

Threads, device and progress bars are decided by ``settings`` (applied once per process at its
boundary: ``inc``, a notebook's first cell, a sweep worker), not here.

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
from .data import Dataset, load_splits
from .masks import apply_masks, effective_state_dict
from .models import accuracy, build_for
from .runs import Run
from .settings import progress_enabled, resolve_device


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
    if config.is_ticket:  # a lottery-ticket round: the rounds it is pruned from are trained first
        from .lottery import parent_run, prerequisites
        parent_run(config, runs_dir)
        for before in prerequisites(config):
            train(before, runs_dir=runs_dir, device=device, data_root=data_root, download=download,
                  progress=progress)
    device = resolve_device(device)
    train_set, test_set = load_splits(config, device, data_root, download)
    check_fits(config, train_set, device)
    try:
        with run.lock():
            if not run.finished:  # another process may have finished it while we loaded the data
                run.create(config, device)
                _fit(run, config, train_set, test_set, device, progress)
    except OSError:
        run.remove_if_unstarted()  # a full or read-only disk leaves no half-made run folder
        raise
    return run


def _fit(run: Run, config: RunConfig, train_set: Dataset, test_set: Dataset, device: str,
         progress: bool | None) -> None:
    """The training loop of ``train``, from the run's newest valid checkpoint; the caller holds the lock."""
    torch.manual_seed(config.seed)
    model = build_for(config, train_set)
    masks = None
    if config.is_ticket:  # rewound weights and the round's mask (lottery.py)
        from .lottery import start_model
        masks = start_model(run, config, model, train_set, run.path.parent)
    model = model.to(device)
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
    if masks is not None:
        apply_masks(model, masks)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    if state is not None:
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
                run.save_checkpoint(epoch, checkpoint_state(epoch, effective_state_dict(model), optimizer.state_dict(),
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

"""Lottery tickets of a trained network by iterative magnitude pruning, each round a run (thesis 5.5.2).

Round ``r`` of the ticket of a finished run ``parent`` (``ticket_config``):

- its mask: round 1 prunes the parent's final weights, round ``r > 1`` the final weights of round
  ``r - 1`` (``masks.magnitude_masks``: global magnitude over the hidden layers, the output layer
  at its own lower rate); round 0 keeps every weight (the dense network retrained on the rounds'
  schedule, the reference a ticket's accuracy is compared with); ``ticket_random`` replaces the
  mask by a random one of the same per-layer densities (``masks.random_masks``, seeded by the
  config's seed and round), the control of Frankle and Carbin 2019;
- its start: the survivors take the parent's weights at epoch ``ticket_rewind`` (a checkpoint of
  the parent; 0 is its initialisation, the "reset" of Frankle and Carbin 2019; rewinding to an
  early epoch is what Frankle et al. 2020 found makes the procedure work for deeper networks and
  larger learning rates); BatchNorm parameters and running statistics come from the same epoch;
  momentum starts at zero;
- its training: ``train.train`` with the round's own (shorter) schedule, the mask applied with
  ``torch.nn.utils.prune``; the run is cached by its config hash and resumes after a kill like
  any run, with one writer (the run lock).

The mask is stored in the round's folder as ``mask.pt`` with a sha256 sidecar, written before
training and read back with ``torch.load(weights_only=True)``; checkpoints hold the effective
weights in the plain model's keys, so ``measure.measure_run`` and ``prune`` treat a ticket like
any run. The seed of a round is its parent's (the same training subset); a round's data order
and random mask follow from it.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from .config import ConfigError, RunConfig
from .data import Dataset
from .masks import magnitude_masks, random_masks
from .models import build_for, probe_points
from .runs import CorruptCheckpointError, Run, find_run, load_tensors, save_tensors

MASK_FILE = "mask.pt"


def ticket_config(parent: RunConfig, round: int, *, rate: float, output_rate: float, rewind: int,
                  epochs: int, random: bool = False, eval_every: int | None = None) -> RunConfig:
    """The config of round ``round`` of ``parent``'s ticket, trained for ``epochs`` epochs with the
    parent's schedule scaled to that length (learning-rate milestones at the same fractions).
    Checkpoints: every fifth of the schedule (for resuming) and the last epoch."""
    milestones = sorted({max(1, round_half(m * epochs / parent.epochs)) for m in parent.lr_milestones})
    return parent.replace(epochs=epochs, lr_milestones=milestones, checkpoints=[],
                          checkpoint_every=max(1, epochs // 5), eval_every=eval_every or epochs,
                          warmup_epochs=min(parent.warmup_epochs, epochs),
                          ticket_parent=parent.name, ticket_round=round, ticket_rate=rate,
                          ticket_output_rate=output_rate, ticket_rewind=rewind, ticket_random=random)


def imp_chains(dense: RunConfig, seeds: list[int], rounds: int, *, rate: float, output_rate: float,
               rewind: int, epochs: int) -> dict[tuple[int, int, str], RunConfig]:
    """Chapter 6's rounds: for each seed, rounds 0..``rounds`` of the ticket of ``dense`` with that
    seed, keyed ``(seed, round, family)``; family ``"ticket"`` (magnitude mask) or ``"random"``
    (the control, rounds 1 and up). In training order: a round after those it is pruned from."""
    return {(s, r, family): ticket_config(dense.replace(seed=s), r, rate=rate, output_rate=output_rate,
                                          rewind=rewind, epochs=epochs, random=family == "random")
            for s in seeds for r in range(rounds + 1) for family in (("ticket", "random") if r else ("ticket",))}


def round_half(x: float) -> int:
    """``x`` rounded half up (Python's ``round`` rounds half to even)."""
    return math.floor(x + 0.5)


def previous(config: RunConfig) -> RunConfig | None:
    """The magnitude ticket of the round before ``config`` (None for rounds 0 and 1, whose weights
    to prune are the parent's)."""
    if config.ticket_round <= 1:
        return None
    return config.replace(ticket_round=config.ticket_round - 1, ticket_random=False)


def parent_run(config: RunConfig, runs_dir: str | Path | None = None) -> Run:
    """The finished run ``config`` is a ticket of; ``ConfigError`` (one line) if it is missing, not
    finished, or not the same network and seed."""
    try:
        parent = find_run(config.ticket_parent, runs_dir)
    except FileNotFoundError as err:
        raise ConfigError(f"ticket_parent: {err}") from None
    if parent.status()["status"] != "done":
        raise ConfigError(f"ticket_parent {parent.name} is not finished ({parent.status()['status']}); "
                          f"train it first")
    same = ("dataset", "n_per_class", "arch", "depth", "width", "bias", "seed", "cifar_stem", "first_relu")
    differ = [k for k in same if getattr(parent.config, k) != getattr(config, k)]
    if differ:
        raise ConfigError(f"a ticket is the same network as its parent; {', '.join(differ)} differ from "
                          f"{parent.name}")
    if config.ticket_rewind and config.ticket_rewind not in parent.checkpoint_epochs():
        raise ConfigError(f"ticket_rewind {config.ticket_rewind}: {parent.name} has no checkpoint there "
                          f"(its checkpoints: {parent.checkpoint_epochs()})")
    return parent


def prerequisites(config: RunConfig) -> list[RunConfig]:
    """The magnitude tickets of the rounds whose weights ``config``'s mask is computed from,
    oldest first (a random control needs the same ones as its round's magnitude ticket)."""
    out, cfg = [], previous(config)
    while cfg is not None:
        out.append(cfg)
        cfg = previous(cfg)
    return out[::-1]


# ---------------------------------------------------------------------------- masks on disk
def save_masks(run: Run, masks: list[torch.Tensor]) -> Path:
    """Write ``masks`` to the run's ``mask.pt`` (atomically) and its sha256 sidecar."""
    return save_tensors(run.path / MASK_FILE, [m.cpu() for m in masks])


def load_masks(run: Run) -> list[torch.Tensor]:
    """The run's masks, verified against their checksum; ``CorruptCheckpointError`` otherwise."""
    path = run.path / MASK_FILE
    masks = load_tensors(path)
    if not (isinstance(masks, list) and all(isinstance(m, torch.Tensor) for m in masks)):
        raise CorruptCheckpointError(f"{path}: not a list of masks")
    return masks


def final_weights(run: Run, data: Dataset) -> list[torch.Tensor]:
    """The weights of every probe point at the run's last epoch (effective weights for a ticket);
    ``data``: any split of the run's dataset (input shape and class count)."""
    state = run.load_checkpoint(run.config.epochs)["model"]
    with torch.device("meta"):
        names = [p.name for p in probe_points(build_for(run.config, data))]
    return [state[f"{name}.weight"] for name in names]


def compute_masks(config: RunConfig, data: Dataset, runs_dir: str | Path | None = None) -> list[torch.Tensor]:
    """The masks of round ``config`` from the finished runs before it (module docstring)."""
    parent = parent_run(config, runs_dir)
    if config.ticket_round == 0:
        with torch.device("meta"):
            shapes = [p.weight.shape for p in probe_points(build_for(config, data))]
        masks = [torch.ones(shape) for shape in shapes]
    else:
        before = previous(config)
        source = parent if before is None else Run.for_config(before, runs_dir)
        if not source.finished:
            raise ConfigError(f"round {config.ticket_round} needs round {config.ticket_round - 1} trained first")
        weights = final_weights(source, data)
        kept = [torch.ones_like(w) for w in weights] if before is None else load_masks(source)
        masks = magnitude_masks(weights, kept, config.ticket_rate, config.ticket_output_rate)
    if config.ticket_random:
        generator = torch.Generator().manual_seed(10_000 * config.seed + config.ticket_round)
        masks = random_masks(masks, generator)
    return masks


def start_model(run: Run, config: RunConfig, model: nn.Module, data: Dataset,
                runs_dir: str | Path | None = None) -> list[torch.Tensor]:
    """Load round ``config``'s starting weights into ``model`` (freshly built after
    ``torch.manual_seed(config.seed)``, i.e. the parent's initialisation) and return its masks,
    computed and saved to ``run`` on the first call, read back (checked) after that."""
    if (run.path / MASK_FILE).exists():
        masks = load_masks(run)
    else:
        masks = compute_masks(config, data, runs_dir)
        save_masks(run, masks)
    if config.ticket_rewind:
        parent = parent_run(config, runs_dir)
        model.load_state_dict(parent.load_checkpoint(config.ticket_rewind, map_location="cpu")["model"])
    return masks

"""Train K compatible MLP runs at once, as stacked tensors on one device.

A sweep over learning rates x weight decays x seeds trains hundreds of small MLPs, each
too small to keep a GPU busy. ``train_batched`` stacks K of them along a leading model
axis: all parameters live in one (K, P) tensor, each Linear is one ``bmm`` for all K
models, each BatchNorm one ``F.batch_norm`` with per-model statistics, and an SGD step is
three ops on (K, P).
Each member still ends as an ordinary run folder (runs.py) with the config, log.csv
columns, status and checkpoints that ``train.train`` writes, reads and can resume.

Same as training alone (``train.train``), so results agree up to float round-off
(``bmm`` vs ``mm``, reduction order):

- initial weights: model k is ``models.build_for`` right after ``torch.manual_seed(seed_k)``;
- data: model k's train split is ``data.load_splits`` with its own seed (a different
  ``n_per_class`` subset per seed; identical splits are stored once);
- minibatch order: model k draws its own permutation each epoch from its own
  ``torch.Generator(device).manual_seed(seed_k)``, and its batches are gathered with a
  (K, B) index tensor. Sharing one order would be simpler, but then a batched run would
  not reproduce its solo run and a resumed solo checkpoint would change data order;
- loss: ``train.loss_fn`` per model (vmapped), summed over models, so each model's
  gradient is that of its own batch mean;
- BatchNorm: ``F.batch_norm`` itself on a (1, K * width, B) view: per-model batch statistics,
  running stats with momentum 0.1 and unbiased variance;
- SGD: torch.optim.SGD's update, per model lr (``train.lr_at``), momentum and weight decay.

Different:

- ``seconds`` in log.csv is the member's share of the group's epoch: its wall time divided
  by the number of models trained in it, so summing ``seconds`` over runs gives machine time;
- a member whose epoch loss is non-finite is logged and marked ``diverged`` as
  ``train.train`` does, then its row is frozen (zeros, lr 0); the others go on;
- a restart resumes the whole group from the newest epoch at which every unfinished
  member has a valid checkpoint (members with newer ones redo those epochs), in a stack of
  the same shape: finished members hold frozen rows. Rows never interact, so on a CPU the
  resumed members end bitwise equal to an uninterrupted group; a member resumed alone
  (``train.train``) is trained as its row of such a stack (its checkpoints record it), and
  is bitwise equal too;
- no CUDA-graph capture (the step would need static index buffers and a re-capture after
  each divergence); the step has no host synchronisation, so kernels queue back to back.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import RunConfig
from .data import Dataset, load_splits
from .models import build_for
from .runs import CorruptCheckpointError, Run
from .settings import IncWarning, progress_enabled, resolve_device
from .train import check_fits, checkpoint_state, loss_fn, lr_at, stopped_or_failed

PER_MODEL = ("lr", "weight_decay", "momentum", "seed")


def batch_groups(configs: list[RunConfig], max_size: int | None = None) -> list[list[RunConfig]]:
    """Group the MLP configs that can train together: equal in every field but ``PER_MODEL``.

    Groups and members keep first-appearance order; a repeated config appears once; other
    architectures and lottery-ticket rounds (masked, ``lottery.py``) are left out (train them
    with ``train.train``). With ``max_size``, a larger
    group is cut into the fewest near-equal consecutive parts of at most ``max_size`` models."""
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}")
    groups: dict[str, dict[str, RunConfig]] = {}
    for cfg in configs:
        if cfg.arch == "mlp" and not cfg.is_ticket:
            shared = {k: v for k, v in cfg.to_dict().items() if k not in PER_MODEL}
            groups.setdefault(json.dumps(shared, sort_keys=True), {})[cfg.name] = cfg
    parts = []
    for group in (list(g.values()) for g in groups.values()):
        n_parts = 1 if max_size is None else math.ceil(len(group) / max_size)
        bounds = [round(i * len(group) / n_parts) for i in range(n_parts + 1)]
        parts += [group[a:b] for a, b in zip(bounds, bounds[1:])]
    return parts


# ------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    """K MLPs of one shape as stacked tensors.

    ``weights``, ``momenta``, ``grads``: (K, P), parameter ``name`` is the view
    ``params[name]`` (K, *shape), in ``model.parameters()`` order; ``buffers``: BatchNorm
    running stats, name -> (K, *shape); ``lr``, ``weight_decay``, ``momentum``: (K, 1).
    ``template`` is the MLP on the meta device: layer order and state_dict keys.
    """

    template: nn.Module
    weights: torch.Tensor
    momenta: torch.Tensor
    buffers: dict[str, torch.Tensor]
    lr: torch.Tensor
    weight_decay: torch.Tensor
    momentum: torch.Tensor
    grads: torch.Tensor = field(init=False)
    params: dict[str, torch.Tensor] = field(init=False)

    def __post_init__(self):
        self.grads = torch.zeros_like(self.weights)
        self.params = {name: p.requires_grad_() for name, p in self.split(self.weights).items()}

    @classmethod
    def empty(cls, configs: list[RunConfig | None], data: Dataset, device: str) -> "Stack":
        """Zero weights, momenta and buffers for ``configs`` on ``data``; hyperparameters from the
        configs; a ``None`` is a frozen row (``freeze``) that keeps the stack's shape."""
        with torch.device("meta"):
            template = build_for(next(c for c in configs if c is not None), data)
        K, size = len(configs), sum(p.numel() for p in template.parameters())
        hyper = torch.tensor([[c.lr, c.weight_decay, c.momentum] if c else [0.0, 0.0, 0.0] for c in configs],
                             device=device)
        return cls(template, torch.zeros(K, size, device=device), torch.zeros(K, size, device=device),
                   {n: torch.zeros(K, *b.shape, dtype=b.dtype, device=device) for n, b in template.named_buffers()},
                   *hyper.T.unsqueeze(2))  # lr, weight_decay, momentum: (K, 1) each

    @classmethod
    def fresh(cls, configs: list[RunConfig], data: Dataset, device: str) -> "Stack":
        """The stack before any step: each model initialised as ``train.train`` initialises it."""
        stack = cls.empty(configs, data, device)
        for k, cfg in enumerate(configs):
            stack.set_row(k, fresh_state(cfg, data, device)["model"], None)
        return stack

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(K, P) -> {parameter name: (K, *shape) view}."""
        views, start = {}, 0
        for name, p in self.template.named_parameters():
            views[name] = flat[:, start:start + p.numel()].view(-1, *p.shape)
            start += p.numel()
        return views

    @torch.no_grad()
    def freeze(self, k: int) -> None:
        """Make row ``k`` a placeholder: zero weights, momenta and buffers, no steps (lr 0).

        Rows never interact, so a frozen row changes no other model's numbers; it keeps the
        stack's shape, and with it the matrix products, the same as before."""
        for tensor in (self.weights, self.momenta, self.lr, self.weight_decay, self.momentum,
                       *self.buffers.values()):
            tensor[k] = 0

    @torch.no_grad()
    def set_row(self, k: int, model: dict, optimizer: dict | None) -> None:
        """Load model ``k`` from an MLP state_dict and a torch.optim.SGD state_dict (None: no steps yet)."""
        for name, p in self.params.items():
            p[k] = model[name]
        for name, b in self.buffers.items():
            b[k] = model[name]
        state = optimizer["state"] if optimizer else {}
        for i, m in enumerate(self.split(self.momenta).values()):
            buf = state.get(i, {}).get("momentum_buffer")
            m[k] = 0 if buf is None else buf

    def row(self, k: int, config: RunConfig, lr: float) -> tuple[dict, dict]:
        """Model ``k`` as (MLP state_dict, torch.optim.SGD state_dict), in exactly their formats."""
        tensors = {n: p[k].detach().clone() for n, p in self.params.items()}
        tensors.update({n: b[k].clone() for n, b in self.buffers.items()})
        model = {key: tensors[key] for key in self.template.state_dict()}
        optimizer = torch.optim.SGD(self.template.parameters(), lr=lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
        if config.momentum:
            for p, m in zip(self.template.parameters(), self.split(self.momenta).values()):
                optimizer.state[p]["momentum_buffer"] = m[k].clone()
        return model, optimizer.state_dict()


def forward(stack: Stack, x: torch.Tensor, training: bool) -> torch.Tensor:
    """Normalised images (K, B, C, H, W) -> logits (K, B, classes); BatchNorm in train or eval mode.

    Activations are kept feature-major, (K, features, B): each Linear is ``W @ h``, so its
    weight gradient comes out of ``bmm`` contiguous, and BatchNorm needs no transpose."""
    h = x
    for name, module in stack.template.named_modules():
        if isinstance(module, nn.Flatten):
            h = h.flatten(2).transpose(1, 2)
        elif isinstance(module, nn.Linear):
            h = linear(h, stack.params[f"{name}.weight"], stack.params.get(f"{name}.bias"))
        elif isinstance(module, nn.BatchNorm1d):
            h = batch_norm(h, stack.params[f"{name}.weight"], stack.params[f"{name}.bias"],
                           stack.buffers[f"{name}.running_mean"], stack.buffers[f"{name}.running_var"],
                           training, module.momentum, module.eps)
            if training:
                stack.buffers[f"{name}.num_batches_tracked"] += 1
        elif isinstance(module, nn.ReLU):
            h = torch.relu(h)
    return h.transpose(1, 2)


def linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """weight (K, out, in) x h (K, in, B) [+ bias (K, out)] -> (K, out, B)."""
    if bias is None:
        return torch.bmm(weight, h)
    return torch.baddbmm(bias.unsqueeze(2), weight, h)


def batch_norm(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
               running_var: torch.Tensor, training: bool, momentum: float, eps: float) -> torch.Tensor:
    """(K, W, B) -> (K, W, B), per model and feature; running stats (K, W) are updated in place.

    ``F.batch_norm`` on the (1, K * W, B) view treats each (model, feature) pair as a channel."""
    K, W, B = h.shape
    out = F.batch_norm(h.reshape(1, K * W, B), running_mean.view(-1), running_var.view(-1),
                       weight.reshape(-1), bias.reshape(-1), training, momentum, eps)
    return out.view(K, W, B)


def train_step(stack: Stack, x: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """One SGD step of every model on its batch x (K, B, C, H, W), y (K, B); returns losses (K,)."""
    losses = torch.vmap(loss_fn, in_dims=(0, 0, None))(forward(stack, x, training=True), y, loss)
    grads = torch.autograd.grad(losses.sum(), list(stack.params.values()))
    torch.cat([g.flatten(1) for g in grads], 1, out=stack.grads)
    sgd_step(stack)
    return losses.detach()


@torch.no_grad()
def sgd_step(stack: Stack) -> None:
    """torch.optim.SGD per row: d_p = g + wd * p; buf = momentum * buf + d_p; p -= lr * buf.

    Momenta start at zero, so the first buf is d_p, as in torch's first step."""
    stack.grads.addcmul_(stack.weights, stack.weight_decay)
    stack.momenta.mul_(stack.momentum).add_(stack.grads)
    stack.weights.addcmul_(stack.momenta, stack.lr, value=-1)


# ------------------------------------------------------------------------------- the data


@dataclass
class Split:
    """One split for K models: raw ``x`` (S, N, C, H, W) and ``y`` (S, N) of S distinct sets,
    ``owner`` (K,) the set each model trains on, ``data`` (any of them) to normalise."""

    data: Dataset
    x: torch.Tensor
    y: torch.Tensor
    owner: torch.Tensor

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions (K, B) -> normalised images (K, B, C, H, W) and labels (K, B)."""
        rows = self.owner.unsqueeze(1)
        return self.data.normalize(self.x[rows, idx]), self.y[rows, idx]

    def select(self, rows: list[int]) -> "Split":
        """The split for models ``rows`` (repeats allowed: a frozen row trains on any model's set)."""
        return replace(self, owner=self.owner[rows])


def load_group_splits(configs: list[RunConfig], device: str, data_root: str | Path | None) -> tuple[Split, Split]:
    """Each model's train split (as ``data.load_splits`` with its seed) and the common test split."""
    sets: list[Dataset] = []
    index: dict[int, int] = {}
    for cfg in configs:
        if cfg.seed not in index:
            train, test = load_splits(cfg, device, data_root)
            same = (i for i, s in enumerate(sets) if torch.equal(s.x, train.x) and torch.equal(s.y, train.y))
            index[cfg.seed] = next(same, len(sets))
            if index[cfg.seed] == len(sets):
                sets.append(train)
    owner = torch.tensor([index[c.seed] for c in configs], device=device)
    return (Split(sets[0], torch.stack([s.x for s in sets]), torch.stack([s.y for s in sets]), owner),
            Split(test, test.x.unsqueeze(0), test.y.unsqueeze(0), torch.zeros_like(owner)))


def permutations(generators: list[torch.Generator], n: int, device: str) -> torch.Tensor:
    """(K, n): one epoch's order per model, drawn as ``Dataset.batches(shuffle=True)`` draws it."""
    return torch.stack([torch.randperm(n, generator=g, device=g.device).to(device) for g in generators])


def train_epoch(stack: Stack, split: Split, generators: list[torch.Generator], config: RunConfig) -> list[float]:
    """One pass of every model over its own seeded order; returns each model's mean batch loss."""
    n = split.x.shape[1]
    order = permutations(generators, n, split.x.device)
    total = torch.zeros(len(generators), dtype=torch.float64, device=split.x.device)
    steps = 0
    for start in range(0, n, config.batch_size):
        idx = order[:, start:start + config.batch_size]
        if idx.shape[1] < 2:  # as train.train_epoch: BatchNorm cannot train on one sample
            continue
        total += train_step(stack, *split.gather(idx), config.loss)
        steps += 1
    return (total / steps).tolist()


@torch.no_grad()
def accuracies(stack: Stack, split: Split, batch_size: int = 1024) -> list[float]:
    """Eval-mode accuracy of each model over its whole split, as ``models.accuracy``."""
    n = split.x.shape[1]
    correct = torch.zeros(len(split.owner), dtype=torch.long, device=split.x.device)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n), device=split.x.device).expand(len(split.owner), -1)
        x, y = split.gather(idx)
        correct += (forward(stack, x, training=False).argmax(2) == y).sum(1)
    return [c / n for c in correct.tolist()]


# --------------------------------------------------------------------------- the runs


@dataclass
class Member:
    """Per-model bookkeeping beside its stack row."""

    config: RunConfig
    run: Run
    order: torch.Generator
    torch_rng: torch.Tensor
    log: list[dict]


def fresh_state(config: RunConfig, data: Dataset, device: str) -> dict:
    """What ``train.train`` starts from: seeded init, order generator, global RNG state after init."""
    torch.manual_seed(config.seed)
    model = build_for(config, data)
    return {"epoch": 0, "model": model.state_dict(), "optimizer": None, "log": [],
            "order_rng": torch.Generator(device=device).manual_seed(config.seed).get_state(),
            "torch_rng": torch.get_rng_state()}


def newest_common_checkpoint(runs: list[Run], like: nn.Module | None = None) -> tuple[int, list[dict] | None]:
    """The newest epoch at which every run has a valid checkpoint that fits the model ``like``,
    and those (on the CPU); (0, None) if none."""
    common = set.intersection(*(set(run.checkpoint_epochs(warn=True)) for run in runs))
    for epoch in sorted(common, reverse=True):
        try:
            return epoch, [run.load_checkpoint(epoch, like=like, resume=True) for run in runs]
        except CorruptCheckpointError as err:
            warnings.warn(f"skipping epoch {epoch}: {err}", IncWarning, stacklevel=2)
    return 0, None


def train_batched(configs: list[RunConfig], *, runs_dir: str | Path | None = None, device: str | None = None,
                  data_root: str | Path | None = None, progress: bool | None = None) -> list[Run]:
    """Train compatible MLP ``configs`` (one group of ``batch_groups``) together; one Run per config.

    Finished runs are cache hits; the others resume from their newest common checkpoint, in a
    stack of the whole group's shape: finished members (done or diverged) hold frozen rows, so
    a resumed group does the same matrix products as an uninterrupted one (bitwise on a CPU).
    Raises ``RunLockedError`` if another process is writing any of them."""
    groups = batch_groups(configs)
    if len(groups) != 1 or len(groups[0]) != len({c.name for c in configs}):
        raise ValueError("train_batched needs MLP configs that differ only in " + ", ".join(PER_MODEL)
                         + "; split them with batch_groups")
    layout = groups[0]
    todo = [c for c in layout if not Run.for_config(c, runs_dir).finished]
    if todo:
        device = resolve_device(device)
        train_split, test_split = load_group_splits(todo, device, data_root)
        check_fits(todo[0], train_split.data, device, models=len(layout))
        with contextlib.ExitStack() as locks:
            runs = [locks.enter_context(Run.for_config(c, runs_dir).lock()) for c in todo]
            live = {c.name: i for i, (c, run) in enumerate(zip(todo, runs)) if not run.finished}  # else finished meanwhile
            if live:
                slots = [c if c.name in live else None for c in layout]
                data_of = [live.get(c.name, next(iter(live.values()))) for c in layout]
                _train_group(slots, runs_dir, device, train_split.select(data_of), test_split.select(data_of),
                             progress)
    return [Run.for_config(c, runs_dir) for c in configs]


def resume_in_stack(config: RunConfig, run: Run, train_set: Dataset, test_set: Dataset, device: str,
                    size: int, row: int, progress: bool | None) -> None:
    """Resume one member of a batched group alone, as row ``row`` of a stack of ``size`` rows (the
    others frozen): the same matrix products as its group, so bitwise the run it would have been.
    The caller (``train.train``) holds the run's lock."""
    slots: list[RunConfig | None] = [None] * size
    slots[row] = config
    train_split = Split(train_set, train_set.x.unsqueeze(0), train_set.y.unsqueeze(0),
                        torch.zeros(size, dtype=torch.long, device=train_set.x.device))
    test_split = Split(test_set, test_set.x.unsqueeze(0), test_set.y.unsqueeze(0), train_split.owner)
    _train_group(slots, run.path.parent, device, train_split, test_split, progress)


def _train_group(slots: list[RunConfig | None], runs_dir, device: str, train_split: Split, test_split: Split,
                 progress: bool | None) -> None:
    """Train the members in ``slots`` (``None``: a frozen row) as one stack; the caller holds their locks."""
    K = len(slots)
    members: list[Member | None] = [None] * K
    live = [k for k, c in enumerate(slots) if c is not None]
    runs = [Run.for_config(slots[k], runs_dir) for k in live]
    for k, run in zip(live, runs):
        run.create(slots[k], device)
    stack = Stack.empty(slots, train_split.data, device)
    start, states = newest_common_checkpoint(runs, like=stack.template)
    for i, (k, run) in enumerate(zip(live, runs)):
        state = states[i] if states else fresh_state(slots[k], train_split.data, device)
        if states and state.get("stack", {"size": K, "row": k}) != {"size": K, "row": k}:
            warnings.warn(f"{run.name} was trained as row {state['stack']['row']} of {state['stack']['size']} "
                          f"models and resumes as row {k} of {K}: equal up to round-off, not bitwise", IncWarning,
                          stacklevel=2)
        stack.set_row(k, state["model"], state["optimizer"])
        order = torch.Generator(device=device)
        order.set_state(state["order_rng"].cpu())
        members[k] = Member(slots[k], run, order, state["torch_rng"].cpu(), list(state["log"]))
        run.set_status("running", epoch=start)
    del states
    for k in range(K):
        if members[k] is None:
            stack.freeze(k)
    orders = [m.order if m else torch.Generator(device=device).manual_seed(0) for m in members]

    config = slots[live[0]]  # the shared fields
    checkpoint_epochs = set(config.checkpoint_epochs())
    bar = tqdm(range(start + 1, config.epochs + 1), desc=f"{len(live)} x {config.dataset}-mlp{config.depth}",
               initial=start, total=config.epochs, disable=not progress_enabled(progress), leave=False)
    try:
        for epoch in bar:
            tic = time.perf_counter()
            lrs = [lr_at(epoch, m.config) if m else 0.0 for m in members]
            stack.lr.copy_(torch.tensor(lrs).unsqueeze(1))
            losses = train_epoch(stack, train_split, orders, config)
            trained = [k for k in range(K) if members[k]]
            rows = {k: {"epoch": epoch, "lr": lrs[k], "loss": losses[k], "train_acc": math.nan,
                        "test_acc": math.nan} for k in trained}
            for k in (k for k in trained if not math.isfinite(losses[k])):   # diverged: logged as train.train does
                m = members[k]
                m.log.append({**rows[k], "seconds": (time.perf_counter() - tic) / len(trained)})
                m.run.write_log(m.log)
                m.run.set_status("diverged", epoch=epoch, loss=str(losses[k]))
                stack.freeze(k)
                members[k] = None
            live = [k for k in trained if members[k]]
            if not live:
                break
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                for key, split in (("train_acc", train_split), ("test_acc", test_split)):
                    accs = accuracies(stack, split)
                    for k in live:
                        rows[k][key] = accs[k]
            seconds = (time.perf_counter() - tic) / len(trained)  # each model's share of the epoch
            for k in live:
                m = members[k]
                m.log.append({**rows[k], "seconds": seconds})
                m.run.write_log(m.log)
                if epoch in checkpoint_epochs:
                    model, optimizer = stack.row(k, m.config, lrs[k])
                    m.run.save_checkpoint(epoch, checkpoint_state(epoch, model, optimizer, m.order.get_state(),
                                                                  m.torch_rng, m.log, lrs[k],
                                                                  stack={"size": K, "row": k}))
            bar.set_postfix(models=len(live), best_loss=f"{min(losses[k] for k in live):.4f}")
    except BaseException as err:
        for m in filter(None, members):
            m.run.set_status(**stopped_or_failed(err))
        raise
    finally:
        bar.close()
    for m in filter(None, members):
        m.run.set_status("done", epoch=config.epochs)

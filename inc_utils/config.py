"""Run configuration: a plain dataclass, strict YAML loading, and a canonical hash.

A config names a training run completely; its hash names the run folder, so two runs
with the same settings share one folder and the second is a cache hit. Loading rejects
unknown keys, wrong types and unknown names before any work starts.

YAML (files and ``--set`` values) is read with ``yaml_loads``: PyYAML's safe loader (no code,
no Python tags), which also reads ``2e-3`` as a float (plain PyYAML makes it a string) and
refuses a key given twice.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ARCHS = ("mlp", "convnet", "resnet")
LOSSES = ("mse", "mse_mean", "ce")
RESNET_DEPTHS = (18, 34, 50)
MAX_DEPTH = 1000  # a guard against typos: the thesis's deepest MLP has 20 layers
MAX_EPOCHS = 100_000  # a guard against typos: the thesis trains 350
MAX_SEED = 2**63 - 1  # torch.manual_seed's range
DATASETS = ("digits", "synthetic", "mnist", "fashion_mnist", "svhn", "cifar10")


#: lr decay points as fractions of training (thesis 3.3: x0.1 at epochs 100 and 200 of 350).
MILESTONE_FRACTIONS = (100 / 350, 200 / 350)


def default_milestones(epochs: int) -> list[int]:
    """The thesis's lr milestones scaled to ``epochs`` (``MILESTONE_FRACTIONS``), rounded down, >= 1."""
    return [max(1, math.floor(epochs * f)) for f in MILESTONE_FRACTIONS]


class ConfigError(ValueError):
    """A config that cannot be run; the message names the offending key."""


class _Brief(reprlib.Repr):
    def repr_int(self, x, level):  # str() of an int over 4300 digits raises; say its size instead
        return super().repr_int(x, level) if x.bit_length() < 10_000 else f"<an integer of {x.bit_length()} bits>"


_BRIEF = _Brief()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 3, 60, 60, 40
BRIEF_LIMIT = 120


def brief(value: object) -> str:
    """``repr(value)`` cut to at most ``BRIEF_LIMIT`` characters, in bounded time however large
    or deeply nested ``value`` is: every error message quotes values through this."""
    text = _BRIEF.repr(value)
    return text if len(text) <= BRIEF_LIMIT else text[:BRIEF_LIMIT - 3] + "..."


def one_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, plus floats without a dot (``2e-3``) and no duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {brief(key)} is given twice",
                                                        key_node.start_mark)
            seen.add(key if isinstance(key, typing.Hashable) else id(key))
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def yaml_loads(text: str, source: str) -> object:
    """Parse YAML ``text`` (see the module docstring); ``ConfigError`` naming ``source`` on one line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        problem = " ".join(str(problem).split())
        raise ConfigError(f"{source}: not valid YAML ({problem[:200]}{where})") from None


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run (thesis 3.3).

    Loss scaling: ``mse`` is the thesis's 1/2 ||f(x) - e_y||^2 summed over classes and
    averaged over the batch. ``mse_mean`` is torch's ``MSELoss`` (mean over batch *and*
    classes), as in the authors' earlier code: its gradient is 2/C times smaller, which is
    the same as a C/2 times smaller learning rate. ``ce`` is cross-entropy.
    Learning rate: multiplied by ``lr_factor`` at each epoch in ``lr_milestones``, after
    a linear warm-up over the first ``warmup_epochs`` epochs (0 = none). Milestones not given
    are the thesis's fractions of training (3.3: epochs 100 and 200 of 350), ``default_milestones``:
    rounded down, at least epoch 1 (400 epochs: [114, 228]). The config keeps the resolved
    list, so its hash is that of a config stating those milestones.
    Checkpoints are written after each epoch in ``checkpoints``, every ``checkpoint_every``
    epochs (0 = never) and always after the last epoch.

    Lottery tickets (``lottery.py``, thesis 5.5.2): a config with ``ticket_parent`` (the name of
    a finished run of the same network and seed) trains a masked copy of that run: round
    ``ticket_round`` of iterative magnitude pruning at ``ticket_rate`` of the remaining hidden
    weights per round (``ticket_output_rate`` for the output layer), survivors rewound to the
    parent's weights at epoch ``ticket_rewind`` (0: its initialisation), or, with
    ``ticket_random``, a random mask of the ticket's per-layer densities. These fields are left
    out of the hash at their defaults, so the configs of ordinary runs keep their hashes.
    """

    dataset: str = "digits"
    n_per_class: int | None = None
    arch: str = "mlp"
    depth: int = 8
    width: int = 256            # MLP width, or ConvNet channels
    bias: bool = False
    cifar_stem: bool = True     # ResNet only
    first_relu: bool = True     # ConvNet only: False = the authors' code (no ReLU in block 1)
    loss: str = "mse"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-3
    batch_size: int = 128
    epochs: int = 400
    lr_milestones: list[int] | None = None     # None: default_milestones(epochs)
    lr_factor: float = 0.1
    warmup_epochs: int = 0
    seed: int = 0
    checkpoints: list[int] = field(default_factory=list)
    checkpoint_every: int = 0
    eval_every: int = 1
    ticket_parent: str | None = None
    ticket_round: int = 0
    ticket_rate: float = 0.0
    ticket_output_rate: float = 0.0
    ticket_rewind: int = 0
    ticket_random: bool = False

    def __post_init__(self):
        _check_types(self)
        _canonicalize_floats(self)
        if self.lr_milestones is None:
            object.__setattr__(self, "lr_milestones", default_milestones(self.epochs))
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("arch", self.arch, ARCHS)
        _check_choice("loss", self.loss, LOSSES)
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must lie in [0, 2**63 - 1], got {brief(self.seed)}")
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"epochs must be <= {MAX_EPOCHS}, got {brief(self.epochs)}")
        for key in ("depth", "width", "batch_size", "epochs", "eval_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {brief(getattr(self, key))}")
        for f in dataclasses.fields(self):
            if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name)):
                raise ConfigError(f"{f.name} must be a finite number, got {brief(getattr(self, f.name))}")
        for key in ("lr", "lr_factor"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {brief(getattr(self, key))}")
        for key in ("momentum", "weight_decay", "warmup_epochs", "checkpoint_every"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {brief(getattr(self, key))}")
        if self.depth > MAX_DEPTH:
            raise ConfigError(f"depth must be <= {MAX_DEPTH}, got {brief(self.depth)}")
        if self.arch == "resnet" and self.depth not in RESNET_DEPTHS:
            raise ConfigError(f"depth: ResNet depth must be one of {RESNET_DEPTHS}, got {brief(self.depth)}")
        if self.arch == "convnet" and self.depth < 2:
            raise ConfigError(f"depth: ConvNet needs depth >= 2 (two downsampling convs), got {brief(self.depth)}")
        if self.n_per_class is not None and self.n_per_class < 1:
            raise ConfigError(f"n_per_class must be >= 1 or null, got {brief(self.n_per_class)}")
        for key in ("ticket_rate", "ticket_output_rate"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key} must lie in [0, 1), got {brief(getattr(self, key))}")
        for key in ("ticket_round", "ticket_rewind"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {brief(getattr(self, key))}")
        if self.ticket_parent is None and any(getattr(self, k) != v for k, v in TICKET_DEFAULTS.items()):
            raise ConfigError("ticket_* fields need ticket_parent, the run whose ticket this is")
        bad = [e for e in self.checkpoints + self.lr_milestones if not 1 <= e <= self.epochs]
        if bad:
            raise ConfigError(f"checkpoints and lr_milestones must lie in [1, epochs={self.epochs}], got {brief(bad)}")

    @property
    def hash(self) -> str:
        """Canonical hash: sha256 of the sorted-key JSON of all fields, 12 hex digits; the
        ``ticket_*`` fields are left out where they equal ``TICKET_DEFAULTS`` (ordinary runs)."""
        fields = {k: v for k, v in self.to_dict().items() if not (k in TICKET_DEFAULTS and v == TICKET_DEFAULTS[k])}
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        """Readable run name, unique through the hash: ``digits-mlp8-<hash>``."""
        return f"{self.dataset}-{self.arch}{self.depth}-{self.hash}"

    @property
    def is_ticket(self) -> bool:
        """A lottery-ticket round (``lottery.py``) rather than an ordinary run."""
        return self.ticket_parent is not None

    def checkpoint_epochs(self) -> list[int]:
        """Sorted epochs after which a checkpoint is written."""
        every = range(self.checkpoint_every, self.epochs + 1, self.checkpoint_every) if self.checkpoint_every else []
        return sorted(set(self.checkpoints) | set(every) | {self.epochs})

    def replace(self, **changes) -> "RunConfig":
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: The ticket fields' defaults: an ordinary run; left out of the hash when equal to these.
TICKET_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name.startswith("ticket_")}


def from_dict(data: dict, cls=RunConfig):
    """Build ``cls`` from a mapping, rejecting unknown keys with a suggestion."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key)[:100], known, n=1)
            listed = [k for k in known if not k.startswith("ticket_")]
            listed += ["ticket_* (lottery-ticket rounds)"] * (len(listed) < len(known))
            raise ConfigError(f"unknown config key {brief(key)}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; known keys: {', '.join(listed)}")
    return cls(**data)


def load_config(path: str | Path, overrides: dict | None = None) -> RunConfig:
    """Read a YAML run config and apply ``overrides`` (already-parsed values)."""
    return from_dict({**read_yaml(path), **(overrides or {})})


def read_yaml(path: str | Path) -> dict:
    """A YAML file holding a non-empty mapping; ``ConfigError`` (one line) for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML config is expected)") from None
    data = yaml_loads(text, str(path))
    if data is None:
        raise ConfigError(f"{path} is empty; write the keys to set, e.g. `dataset: digits`")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    return data


def parse_overrides(items: list[str]) -> dict:
    """``["lr=0.1", "checkpoints=[10, 20]"]`` -> ``{"lr": 0.1, "checkpoints": [10, 20]}`` (YAML values)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {brief(item)} is not of the form key=value")
        if key.strip() in out:
            raise ConfigError(f"--set: key {brief(key.strip())} is given twice")
        out[key.strip()] = yaml_loads(value, f"--set {item if item.isprintable() and len(item) <= 100 else brief(item)}")
    return out


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = difflib.get_close_matches(value[:100], choices, n=1)
        raise ConfigError(f"{key}: unknown name {brief(value)}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                          + f"; choose from {', '.join(choices)}")


def _check_types(obj) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _is_instance(value, hints[f.name]):
            raise ConfigError(f"{f.name}: expected {_type_name(hints[f.name])}, got {brief(value)} ({type(value).__name__})")


def _canonicalize_floats(obj) -> None:
    """Store ints given for float fields as floats, so ``lr: 1`` and ``lr: 1.0`` hash alike."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if hints[f.name] is float:
            object.__setattr__(obj, f.name, float(getattr(obj, f.name)))


def _is_instance(value, tp) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_is_instance(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_is_instance(k, args[0]) and _is_instance(v, args[1])
                                               for k, v in value.items())
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp) -> str:
    return str(tp).replace("typing.", "") if typing.get_args(tp) else tp.__name__

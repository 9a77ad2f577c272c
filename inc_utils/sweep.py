"""Sweeps: a grid over any RunConfig fields, run locally or on SLURM through submitit.

A sweep YAML has a ``base`` (RunConfig fields shared by all runs) and a ``grid`` (field ->
list of values); the runs are the Cartesian product, in a stable order. Only runs that are
not finished are trained, so a sweep can be restarted at any time. A diverged or failed
run never stops the sweep; its status is in ``sweep_table``.

Executors: ``local`` (in this process, one run after another), ``processes`` (``jobs``
parallel worker processes), ``submitit-local`` (submitit's local executor, the SLURM code
path without a cluster; used by the tests) and ``slurm`` (a job array; a preempted or
timed-out job is requeued and resumes from its newest checkpoint).
With ``batched=True`` compatible MLP configs are trained together (batched.py), one
group of at most ``group_size`` models per task; other architectures run one model at a time.
Lottery-ticket rounds (lottery.py) run as one task per chain: the dense network they are
pruned from (when listed and unfinished), then its rounds in order. The ``processes``
executor starts the tasks with the most estimated work first (``estimated_work``), so that
its workers finish close together.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import settings
from .config import ConfigError, RunConfig, from_dict, read_yaml
from .runs import DamagedRunError, Run, RunLockedError, list_runs

EXECUTORS = ("local", "processes", "submitit-local", "slurm")
#: Default most MLPs per batched group: MLP-10 (width 1024) on CIFAR10 has 12.6M parameters, and
#: a model in the stack holds four float32 copies of them (weights, momenta, autograd's grads and
#: their flat copy), 200 MB; 33 models plus activations take about 7.5 GB, within a 16 GB GPU.
MAX_GROUP = 33


@dataclass(frozen=True)
class SweepConfig:
    """``base``: RunConfig fields for every run; ``grid``: field -> values to cross."""

    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.base, dict) or not isinstance(self.grid, dict):
            raise ConfigError("a sweep needs mappings 'base' and 'grid'")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid.{key}: expected a non-empty list of values, got {values!r}")
        self.configs()  # validates every combination before any work starts

    def configs(self) -> list[RunConfig]:
        keys = list(self.grid)
        return [from_dict({**self.base, **dict(zip(keys, combo))})
                for combo in itertools.product(*(self.grid[k] for k in keys))]


def load_sweep(path: str | Path) -> SweepConfig:
    return from_dict(read_yaml(path), SweepConfig)


def configs_in(params: dict) -> list[RunConfig]:
    """The training runs a chapter's parameters ask for: ``experiments`` (a list of run configs),
    ``experiment`` (one) and ``sweeps`` (label -> base + grid); all validated. With ``rounds``
    (chapter 6) also the dense network for each of ``seeds`` and their lottery-ticket rounds
    (``lottery.imp_chains``), which a sweep trains as one chain per seed (``chains``); the networks
    as deep as the layer of collapse are never listed, since that layer is known only once measured."""
    configs = [from_dict(e) for e in params.get("experiments", [])]
    if "experiment" in params:
        configs.append(from_dict(params["experiment"]))
    for sweep in params.get("sweeps", {}).values():
        configs += from_dict(sweep, SweepConfig).configs()
    if "rounds" in params:
        from .lottery import imp_chains
        dense = from_dict(params["experiment"])
        chains = imp_chains(dense, params["seeds"], params["rounds"], rate=params["rate"],
                            output_rate=params["output_rate"], rewind=params["rewind_epoch"],
                            epochs=params["round_epochs"])
        listed = {c.name for c in configs}
        configs += [c for c in [*(dense.replace(seed=s) for s in params["seeds"]), *chains.values()]
                    if c.name not in listed]
    return configs


def load_configs(path: str | Path) -> list[RunConfig]:
    """The runs a YAML file asks for: a sweep file (``base`` + ``grid``), or a chapter's
    parameter file (``params/<scale>/<chapter>.yaml``, see ``configs_in``)."""
    params = read_yaml(path)
    keys = set(params) if isinstance(params, dict) else set()
    if keys & {"experiments", "experiment", "sweeps"}:
        return configs_in(params)
    if not keys & {"base", "grid"}:
        raise ConfigError(f"{path}: expected a sweep ('base' and 'grid') or a chapter's parameters "
                          f"('experiments', 'experiment' or 'sweeps'); for one run use `inc train`")
    return from_dict(params, SweepConfig).configs()


def sweep_table(configs: list[RunConfig], runs_dir: str | Path | None = None) -> pd.DataFrame:
    """The run table (see ``runs.list_runs``) restricted to ``configs``, missing runs as pending."""
    table = list_runs(runs_dir).set_index("run")
    rows = []
    for cfg in configs:
        if cfg.name in table.index:
            rows.append({"run": cfg.name, **table.loc[cfg.name].to_dict()})
        else:
            rows.append({"run": cfg.name, "status": "pending", "dataset": cfg.dataset, "arch": f"{cfg.arch}{cfg.depth}",
                         "lr": cfg.lr, "weight_decay": cfg.weight_decay, "seed": cfg.seed, "epochs": f"0/{cfg.epochs}"})
    return pd.DataFrame(rows, columns=["run", *table.columns])


def plan(configs: list[RunConfig], runs_dir: str | Path | None = None) -> pd.DataFrame:
    """Dry run: each config's status and the model-epochs still to train."""
    rows = []
    for cfg in configs:
        run = Run.for_config(cfg, runs_dir)
        try:
            done = len(run.read_log())
        except DamagedRunError:
            done = 0  # training it resumes from its checkpoints and rewrites the log
        status = run.status()["status"]
        rows.append({"run": cfg.name, "status": status,
                     "model_epochs_left": 0 if run.finished else cfg.epochs - done})
    return pd.DataFrame(rows, columns=["run", "status", "model_epochs_left"])


class TrainTask:
    """One unit of work: a list of configs trained as one batched group or one at a time.

    A callable object so that submitit can pickle it and, on preemption or timeout,
    requeue it (``checkpoint``); training then resumes from the newest checkpoints.
    """

    def __init__(self, runs_dir: str, device: str | None, data_root: str | None, batched: bool):
        self.runs_dir, self.device, self.data_root, self.batched = runs_dir, device, data_root, batched
        # a worker process (processes, submitit, SLURM) is a process boundary: it applies the settings
        # of the process that made the task (folders, threads, progress), whatever its environment
        self.settings, self.maker = settings.current(), os.getpid()

    def __call__(self, configs: list[dict]) -> list[str]:
        """Train the task: as one batched group when its configs form one (``batched.batch_groups``),
        otherwise one after another in order (a ticket chain, a single run). Returns one line for
        each run another process was writing (not trained)."""
        from .batched import batch_groups
        from .train import train
        if os.getpid() != self.maker:
            settings.use(self.settings)
        cfgs = [from_dict(c) for c in configs]
        skipped = []
        if self.batched and len(cfgs) > 1 and [len(g) for g in batch_groups(cfgs)] == [len(cfgs)]:
            from .batched import train_batched
            try:
                train_batched(cfgs, runs_dir=self.runs_dir, device=self.device, data_root=self.data_root,
                              progress=False)
            except RunLockedError as err:  # another process trains them: its status stands
                skipped.append(str(err))
            except Exception as err:  # noqa: BLE001 - a failed group must not stop the sweep
                hint = " (fewer models per group: --group-size)" if "out of memory" in str(err) else ""
                for cfg in cfgs:
                    self._record_failure(cfg, f"{type(err).__name__}: {err}{hint}")
            return skipped
        for cfg in cfgs:
            try:
                train(cfg, runs_dir=self.runs_dir, device=self.device, data_root=self.data_root, progress=False)
            except RunLockedError as err:
                skipped.append(str(err))
            except Exception as err:  # noqa: BLE001 - a failed run must not stop the sweep
                self._record_failure(cfg, f"{type(err).__name__}: {err}")
        return skipped

    def _record_failure(self, config: RunConfig, error: str) -> None:
        """Mark an unfinished run failed, with its config, so the sweep table can show why."""
        run = Run.for_config(config, self.runs_dir)
        try:
            with run.lock():
                if not run.finished:
                    run.create(config, self.device or "auto")
                    run.set_status("failed", error=error)
        except RunLockedError:
            pass  # another process is training it now: its status stands

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def tasks_for(configs: list[RunConfig], runs_dir: str | Path, batched: bool,
              group_size: int | None = None) -> list[list[RunConfig]]:
    """Split the unfinished configs into tasks: batched MLP groups of at most ``group_size``
    (default ``MAX_GROUP``), then ticket chains (``chains``), then single runs.

    Groups are cut from all ``configs``, finished ones included, so a restarted sweep rebuilds
    the groups it started with (``train_batched`` keeps finished members as frozen rows)."""
    unfinished = [c for c in configs if not Run.for_config(c, runs_dir).finished]
    names = {c.name for c in unfinished}
    linked = chains(unfinished)
    chained = {c.name for chain in linked for c in chain}
    groups = []
    if batched:
        from .batched import batch_groups
        groups = [g for g in batch_groups(configs, MAX_GROUP if group_size is None else group_size)
                  if len(g) > 1 and any(c.name in names for c in g) and not any(c.name in chained for c in g)]
    grouped = {c.name for g in groups for c in g}
    return groups + linked + [[c] for c in unfinished if c.name not in grouped | chained]


def chains(configs: list[RunConfig]) -> list[list[RunConfig]]:
    """The lottery-ticket rounds among ``configs``, one list per dense network they are pruned
    from: that network first when it is among ``configs``, then its rounds in the given order
    (``lottery.imp_chains`` lists a round after those it is pruned from). A round needs the runs
    before it finished, so a chain is trained in order, in one task."""
    by_name = {c.name: c for c in configs}
    linked: dict[str, list[RunConfig]] = {}
    for c in configs:
        if c.is_ticket:
            chain = linked.setdefault(c.ticket_parent, [by_name[c.ticket_parent]] if c.ticket_parent in by_name else [])
            chain.append(c)
    return list(linked.values())


def estimated_work(configs: list[RunConfig], data_root: str | None = None) -> float:
    """Multiply-adds of the forward passes that training ``configs`` takes (epochs x training
    images x multiply-adds per image): a rough proxy for training time, used only to order tasks."""
    import torch

    from .data import load_dataset
    from .models import build_for
    from .prune import cost
    total, splits = 0.0, {}
    for cfg in configs:
        key = (cfg.dataset, cfg.n_per_class, cfg.seed)
        if key not in splits:
            splits[key] = load_dataset(cfg.dataset, "train", root=data_root, n_per_class=cfg.n_per_class, seed=cfg.seed)
        train_set = splits[key]
        with torch.device("meta"):
            model = build_for(cfg, train_set)
        total += cfg.epochs * len(train_set) * cost(model, train_set.in_shape)["macs"]
    return total


def run_sweep(configs: list[RunConfig], *, runs_dir: str | Path | None = None, executor: str = "local",
              jobs: int = 1, batched: bool = True, group_size: int | None = None, device: str | None = None,
              data_root: str | None = None, slurm: dict | None = None) -> pd.DataFrame:
    """Train every unfinished config with ``executor``; return the sweep's run table.

    ``batched``: train compatible MLPs together, at most ``group_size`` (default
    ``MAX_GROUP``) per group; a failed group marks its unfinished runs failed.
    ``table.attrs["skipped"]``: one line per run not trained because another process writes it."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    runs_dir = str(settings.runs_dir(runs_dir))
    task = TrainTask(runs_dir, device, data_root, batched)
    work = [[c.to_dict() for c in group] for group in tasks_for(configs, runs_dir, batched, group_size)]
    if not work:
        table = sweep_table(configs, runs_dir)
        table.attrs["skipped"] = []
        return table
    if executor == "local":
        skipped = [line for item in work for line in task(item)]
    elif executor == "processes":
        if jobs > 1 and len(work) > jobs:  # the longest first: workers that end together
            work.sort(key=lambda item: -estimated_work([from_dict(c) for c in item], data_root))
        skipped = run_in_processes(task, work, jobs)
    else:
        import submitit
        folder = Path(runs_dir) / "_submitit"
        cluster = "local" if executor == "submitit-local" else "slurm"
        ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
        ex.update_parameters(timeout_min=(slurm or {}).get("timeout_min", 60 * 24),
                             **{k: v for k, v in (slurm or {}).items() if k != "timeout_min"})
        job_list = ex.map_array(task, work)
        skipped = [line for job in job_list for line in job.result()]
    table = sweep_table(configs, runs_dir)
    table.attrs["skipped"] = skipped
    return table


class SweepWorkerDied(RuntimeError):
    """A worker process of ``--executor processes`` ended without finishing its task (killed)."""


def run_in_processes(task: TrainTask, work: list[list[dict]], jobs: int) -> list[str]:
    """Run ``task`` over ``work`` in ``jobs`` spawned worker processes; returns the skipped lines.
    A progress bar counts the tasks done (the workers train without one).

    Workers die with this process (``stopping.worker_init``). On Ctrl-C, SIGTERM or a worker
    that died, the queued tasks are dropped, the running ones stopped (SIGTERM: they mark their
    runs ``stopped``), runs still marked ``running`` without a live writer are marked
    ``stopped``, and the error is raised (a dead worker as ``SweepWorkerDied``)."""
    import gc
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    from tqdm.auto import tqdm

    from .stopping import run_in_worker, worker_init
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    # spawn, not fork: a forked child of a process that ran multi-threaded OpenMP hangs (libgomp)
    quiet_resource_tracker()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=worker_init, initargs=(os.getpid(),))
    try:
        futures = [pool.submit(run_in_worker, task, item) for item in work]
        done = tqdm(as_completed(futures), total=len(futures), desc=f"tasks in {jobs} processes",
                    disable=not settings.progress_enabled())
        return [line for future in done for line in future.result()]
    except BaseException as err:
        stop_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        del pool, futures  # the queues' semaphores go now, not at exit (where the resource tracker warns)
        gc.collect()
        mark_stopped([from_dict(c) for item in work for c in item], task.runs_dir)
        if isinstance(err, BrokenProcessPool):
            raise SweepWorkerDied("a sweep worker process died before finishing its runs (killed, or out of "
                                  "memory); the others were stopped and their runs keep their checkpoints; "
                                  "the same command again resumes them") from None
        raise
    finally:
        if "pool" in locals():
            pool.shutdown(wait=True)


def quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with its stderr on /dev/null: after workers were
    stopped it warns of the pool's semaphores, which it then removes itself, and those lines
    would break the one line a stopped sweep prints."""
    from multiprocessing import resource_tracker
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def stop_workers(pool: ProcessPoolExecutor, grace: float = 60.0) -> None:
    """SIGTERM every live worker of ``pool`` and wait ``grace`` seconds for it; then SIGKILL."""
    import time
    processes = list((pool._processes or {}).values())  # noqa: SLF001 - the pool has no public handle
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def mark_stopped(configs: list[RunConfig], runs_dir: str | Path) -> None:
    """Mark ``stopped`` each run still marked ``running`` that no process is writing (its writer died)."""
    for cfg in configs:
        run = Run.for_config(cfg, runs_dir)
        if run.status()["status"] == "running":
            try:
                with run.lock():
                    if run.status()["status"] == "running":
                        run.set_status("stopped", error="its sweep worker died; training it again resumes it")
            except RunLockedError:
                pass  # a live writer: its status stands

from pathlib import Path

import pytest
import yaml

from inc_utils.__main__ import main
from inc_utils.config import ConfigError, RunConfig
from inc_utils.runs import Run
from inc_utils.sweep import SweepConfig, load_sweep, plan, run_sweep

BASE = {"dataset": "digits", "n_per_class": 20, "depth": 2, "width": 16, "epochs": 3, "lr_milestones": [],
        "eval_every": 3}


def test_grid_expands_in_stable_order_and_validates(tmp_path):
    sweep = SweepConfig(base=BASE, grid={"lr": [0.01, 0.1], "seed": [0, 1, 2]})
    configs = sweep.configs()
    assert [(c.lr, c.seed) for c in configs] == [(0.01, 0), (0.01, 1), (0.01, 2), (0.1, 0), (0.1, 1), (0.1, 2)]
    assert len({c.hash for c in configs}) == 6
    with pytest.raises(ConfigError, match="unknown config key 'lrate'"):
        SweepConfig(base=BASE, grid={"lrate": [0.1]})
    with pytest.raises(ConfigError, match="grid.lr: expected a non-empty list"):
        SweepConfig(base=BASE, grid={"lr": 0.1})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"lr": [0.1]}, "extra": 1}))
    with pytest.raises(ConfigError, match="unknown config key 'extra'"):
        load_sweep(path)


def test_failed_run_does_not_stop_the_sweep_and_restart_is_free(tmp_path, monkeypatch):
    monkeypatch.setenv("INC_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = SweepConfig(base=BASE, grid={"lr": [0.01, 0.1]}).configs()
    bad = good[0].replace(dataset="mnist")                      # no MNIST files anywhere: fails
    configs = [bad, *good]
    assert plan(configs, tmp_path).model_epochs_left.tolist() == [3, 3, 3]
    table = run_sweep(configs, runs_dir=tmp_path, batched=False)
    assert table.status.tolist() == ["failed", "done", "done"]
    assert "DatasetNotFoundError" in Run.for_config(bad, tmp_path).status()["error"]
    assert plan(configs, tmp_path).model_epochs_left.tolist() == [3, 0, 0]


@pytest.mark.slow
def test_submitit_local_executor_runs_the_same_path(tmp_path):
    configs = SweepConfig(base=BASE, grid={"seed": [0, 1]}).configs()
    table = run_sweep(configs, runs_dir=tmp_path, executor="submitit-local", batched=False)
    assert table.status.tolist() == ["done", "done"]
    assert (tmp_path / "_submitit").is_dir()
    for cfg in configs:
        assert Run.for_config(cfg, tmp_path).checkpoint_epochs() == [3]


def test_cli_dry_run(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"lr": [0.01, 0.1, 0.2]}}))
    assert main(["sweep", str(path), "--dry-run", "--runs-dir", str(tmp_path)]) == 0
    assert "3 runs, 3 to train, 9 model-epochs" in capsys.readouterr().out
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"lr": [0.01, "fast"]}}))
    assert main(["sweep", str(path), "--dry-run", "--runs-dir", str(tmp_path)]) == 2
    assert "lr: expected float" in capsys.readouterr().err
    one_run = Path(__file__).resolve().parents[1] / "params/smoke/train.yaml"
    assert main(["sweep", str(one_run), "--dry-run"]) == 2                 # one run's config, not a sweep
    assert "expected a sweep ('base' and 'grid') or a chapter's parameters" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["sweep", str(path), "--group-size", "0"])
    assert exited.value.code == 2 and "expected a positive integer below 10**9, got '0'" in capsys.readouterr().err


@pytest.mark.slow
def test_batched_sweep_through_submitit_groups_mlps_and_runs_the_rest_alone(tmp_path):
    from inc_utils.sweep import tasks_for
    mlps = SweepConfig(base=BASE, grid={"lr": [0.01, 0.1], "seed": [0, 1]}).configs()
    conv = mlps[0].replace(arch="convnet", depth=2, width=4)
    diverging = mlps[0].replace(lr=1e6)
    configs = [*mlps, diverging, conv]
    tasks = tasks_for(configs, tmp_path, batched=True)
    assert sorted(len(t) for t in tasks) == [1, 5]
    table = run_sweep(configs, runs_dir=tmp_path, executor="submitit-local", batched=True)
    assert table.status.tolist() == ["done"] * 4 + ["diverged", "done"]
    assert tasks_for(configs, tmp_path, batched=True) == []


@pytest.mark.slow
def test_processes_executor(tmp_path):
    configs = SweepConfig(base=BASE, grid={"seed": [3, 4]}).configs()
    table = run_sweep(configs, runs_dir=tmp_path, executor="processes", jobs=2, batched=False)
    assert table.status.tolist() == ["done", "done"]
    with pytest.raises(ConfigError, match="unknown executor 'cluster'"):
        run_sweep(configs, runs_dir=tmp_path, executor="cluster")


def test_batched_groups_are_capped_and_a_failed_group_does_not_stop_the_sweep(tmp_path, monkeypatch):
    import inc_utils.batched as batched_module
    from inc_utils.sweep import tasks_for
    mlps = SweepConfig(base=BASE, grid={"lr": [0.01, 0.1], "seed": [0, 1]}).configs()
    deeper = [c.replace(depth=3) for c in mlps[:2]]
    assert [len(t) for t in tasks_for(mlps + deeper, tmp_path, batched=True, group_size=2)] == [2, 2, 2]
    assert [len(t) for t in tasks_for(mlps + deeper, tmp_path, batched=True)] == [4, 2]

    original = batched_module.train_epoch

    def out_of_memory_at_depth_2(stack, split, generators, config):
        if config.depth == 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(stack, split, generators, config)

    monkeypatch.setattr(batched_module, "train_epoch", out_of_memory_at_depth_2)
    table = run_sweep(mlps + deeper, runs_dir=tmp_path, group_size=2)
    assert table.status.tolist() == ["failed"] * 4 + ["done"] * 2
    error = Run.for_config(mlps[0], tmp_path).status()["error"]
    assert error.startswith("RuntimeError: CUDA out of memory") and error.endswith("(fewer models per group: --group-size)")


def test_cli_sweep_is_batched_by_default(tmp_path, monkeypatch, capsys):
    import inc_utils.batched as batched_module
    groups, original = [], batched_module.train_batched
    monkeypatch.setattr(batched_module, "train_batched",
                        lambda configs, **kwargs: groups.append(len(configs)) or original(configs, **kwargs))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"lr": [0.01, 0.1]}}))
    for folder, flags in (("default", []), ("groups-of-1", ["--batched", "--group-size", "1"]),
                          ("solo", ["--no-batched"])):
        assert main(["sweep", str(path), *flags, "--runs-dir", str(tmp_path / folder)]) == 0
        assert capsys.readouterr().out.rstrip().endswith("done    2")
    assert groups == [2]                        # only the default call trained a batched group


def test_ticket_rounds_run_as_one_chain_per_dense_network_in_order(tmp_path):
    from inc_utils.lottery import imp_chains
    from inc_utils.sweep import chains, tasks_for
    dense = RunConfig(**{**BASE, "epochs": 4, "checkpoints": [2], "lr_milestones": [2]})
    rounds = imp_chains(dense, [0, 1], 2, rate=0.5, output_rate=0.2, rewind=2, epochs=2)
    others = SweepConfig(base=BASE, grid={"lr": [0.01, 0.1]}).configs()    # two MLPs: one batched group
    configs = [dense, dense.replace(seed=1), *rounds.values(), *others]
    tasks = tasks_for(configs, tmp_path, batched=True)
    assert tasks == [others, [dense, *[c for (s, _, _), c in rounds.items() if s == 0]],
                     [dense.replace(seed=1), *[c for (s, _, _), c in rounds.items() if s == 1]]]
    assert chains(others) == []
    run_sweep([dense, *[c for (s, _, _), c in rounds.items() if s == 0]], runs_dir=tmp_path)   # one task, in order
    assert all(Run.for_config(c, tmp_path).finished for (s, _, _), c in rounds.items() if s == 0)
    assert tasks_for(configs, tmp_path, batched=True) == tasks[:1] + tasks[2:]      # the finished chain is gone
    assert tasks_for(rounds.values(), tmp_path, batched=False) == [[c for (s, _, _), c in rounds.items() if s == 1]]


def test_the_work_estimate_orders_tasks_by_training_cost():
    from inc_utils.sweep import estimated_work
    mlp = RunConfig(**BASE)
    assert estimated_work([mlp.replace(epochs=6)]) == pytest.approx(2 * estimated_work([mlp]))
    assert estimated_work([mlp.replace(n_per_class=40)]) == pytest.approx(2 * estimated_work([mlp]))
    assert estimated_work([mlp, mlp]) == pytest.approx(2 * estimated_work([mlp]))
    assert estimated_work([mlp.replace(width=64)]) > 4 * estimated_work([mlp])
    assert estimated_work([mlp.replace(arch="convnet", width=16)]) > estimated_work([mlp])


@pytest.mark.slow
def test_ticket_chains_train_in_worker_processes(tmp_path):
    import torch

    from inc_utils.lottery import imp_chains, load_masks
    dense = RunConfig(**{**BASE, "epochs": 4, "checkpoints": [2], "lr_milestones": [2]})
    rounds = imp_chains(dense, [0, 1], 2, rate=0.5, output_rate=0.2, rewind=2, epochs=2)
    configs = [dense, dense.replace(seed=1), *rounds.values()]
    table = run_sweep(configs, runs_dir=tmp_path, executor="processes", jobs=2)
    assert table.status.tolist() == ["done"] * len(configs)
    for seed in (0, 1):                  # each chain pruned round 2 from its own round 1's survivors
        first, second = (load_masks(Run.for_config(rounds[seed, r, "ticket"], tmp_path)) for r in (1, 2))
        assert all(torch.all(b <= a) for a, b in zip(first, second)) and sum(map(torch.sum, second)) < sum(map(torch.sum, first))

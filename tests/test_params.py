"""Parameter files and notebooks: keys match each notebook, run configs validate, pairs in sync."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import pytest

from inc_utils.config import ConfigError
from inc_utils.reproduce import chapters, plan_scale, read_yaml
from inc_utils.runs import current_umask
from inc_utils.sweep import configs_in

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_every_chapter_has_valid_parameters_at_each_scale(scale, tmp_path, monkeypatch):
    monkeypatch.setenv("INC_RUNS_DIR", str(tmp_path))
    assert [src for src, _ in chapters(ROOT, scale)] == SOURCES
    table = plan_scale(scale, ROOT)
    assert (table.status == "pending").all() and (table.model_epochs_left > 0).all()
    for _, params_file in chapters(ROOT, scale):
        assert configs_in(read_yaml(params_file))


def test_paper_scale_is_the_thesis_configuration():
    ch1 = configs_in(read_yaml(ROOT / "params/paper/01_intermediate_nc.yaml"))
    assert {(c.arch, c.depth) for c in ch1} == {("mlp", 10), ("convnet", 20), ("resnet", 50)}
    assert {c.dataset for c in ch1} == {"mnist", "fashion_mnist", "svhn", "cifar10"}
    for c in ch1:
        assert (c.epochs, c.lr_milestones, c.lr_factor, c.batch_size) == (350, [100, 200], 0.1, 128)
        assert c.weight_decay == (5e-5 if c.arch == "resnet" else 2e-3)
        assert c.width == (1024 if c.arch == "mlp" else 128 if c.arch == "convnet" else c.width)
    ch2 = configs_in(read_yaml(ROOT / "params/paper/02_collapse_vs_generalization.yaml"))
    mlp = [c for c in ch2 if c.arch == "mlp"]
    assert sorted({c.lr for c in mlp}) == [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2]
    assert len(mlp) == 11 * 3 * 3


def test_unknown_parameter_is_rejected(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params" / "smoke").mkdir(parents=True)
    (tmp_path / "notebooks" / "01_x.py").write_text('# %% tags=["parameters"]\nalpha = 1\n')
    (tmp_path / "params" / "smoke" / "01_x.yaml").write_text("alpha: 2\nbeta: 3\n")
    with pytest.raises(ConfigError, match="unknown parameter.*beta; the notebook declares alpha"):
        plan_scale("smoke", tmp_path)
    with pytest.raises(ConfigError, match="unknown scale 'huge'"):
        plan_scale("huge", tmp_path)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_paired_ipynb_is_in_sync_and_has_no_outputs(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"run: jupytext --sync {source}"
    from_py, from_ipynb = jupytext.read(source), jupytext.read(paired)
    assert [c.source for c in from_py.cells] == [c.source for c in from_ipynb.cells], \
        f"out of sync, run: jupytext --sync {source}"
    assert all(not c.get("outputs") for c in from_ipynb.cells if c.cell_type == "code")
    tags = [c.metadata.get("tags", []) for c in from_py.cells]
    assert sum("parameters" in t for t in tags) == 1


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_nbval_reference_runs_the_current_notebook_code(source):
    """nbval executes the reference's own cells: they must be today's code (`make references`)."""
    reference = ROOT / "tests" / "notebooks" / f"{source.stem}.ipynb"
    assert reference.exists(), "run: make references"
    ref_cells = [c.source for c in jupytext.read(reference).cells
                 if "injected-parameters" not in c.metadata.get("tags", [])]
    assert ref_cells == [c.source for c in jupytext.read(source).cells], "stale reference, run: make references"


def _tiny_project(root: Path, body: str) -> None:
    (root / "notebooks").mkdir(parents=True)
    (root / "params" / "smoke").mkdir(parents=True)
    (root / "notebooks" / "01_tiny.py").write_text(f'# %% tags=["parameters"]\nalpha = 1\n\n# %%\n{body}\n')
    (root / "params" / "smoke" / "01_tiny.yaml").write_text("alpha: 41\n")


def test_reproduce_builds_whole_or_not_at_all(tmp_path):
    import nbformat
    from inc_utils.reproduce import reproduce
    project = tmp_path / "project"
    _tiny_project(project, "import os, pathlib\n"
                           "pathlib.Path(os.environ['INC_BUILD_DIR'], 'figures').mkdir()\n"
                           "print('answer', alpha + 1, pathlib.Path(os.environ['INC_BUILD_DIR']).name)")
    [out] = reproduce("smoke", project)
    build = project / "build" / "smoke"
    assert out == build / "01_tiny.ipynb"
    texts = [o.get("text", "") for c in nbformat.read(out, 4).cells if c.cell_type == "code" for o in c.outputs]
    assert any(t.startswith("answer 42 .smoke.building-") for t in texts)  # the kernel wrote into the fresh folder
    assert sorted(p.name for p in build.iterdir()) == ["01_tiny.html", "01_tiny.ipynb", "build.json", "claims.csv",
                                                     "figures", "index.html"]
    assert build.stat().st_mode & 0o777 == 0o777 & ~current_umask()

    before = {p.name: p.read_bytes() for p in build.glob("*.*")}
    (project / "notebooks" / "01_tiny.py").write_text('# %% tags=["parameters"]\nalpha = 1\n\n# %%\n'
                                                      "raise RuntimeError('boom')\n")
    with pytest.raises(Exception, match="boom"):
        reproduce("smoke", project)
    assert {p.name: p.read_bytes() for p in build.glob("*.*")} == before   # the previous build, untouched
    assert sorted(p.name for p in (project / "build").iterdir()) == [".smoke.kernels.log", ".smoke.lock", "smoke"]


def test_colab_scale_is_mlp10_on_fashion_mnist_and_estimates_its_time(tmp_path, monkeypatch, capsys):
    from inc_utils.__main__ import main
    monkeypatch.setenv("INC_RUNS_DIR", str(tmp_path))
    colab = {src.stem: configs_in(read_yaml(p)) for src, p in chapters(ROOT, "colab")}
    assert {"01_intermediate_nc", "02_collapse_vs_generalization", "03_clustering", "04_pca_sparsity",
            "05_pruning"} <= set(colab)
    for cfg in (c for configs in colab.values() for c in configs):
        assert (cfg.dataset, cfg.arch, cfg.depth, cfg.width, cfg.batch_size) == ("fashion_mnist", "mlp", 10, 1024, 128)
    assert (colab["01_intermediate_nc"] == colab["03_clustering"] == colab["04_pca_sparsity"]
            == colab["05_pruning"])                                                         # one shared run
    sweep = colab["02_collapse_vs_generalization"]
    assert len(sweep) == 22 and len({c.lr for c in sweep}) == 11 and {c.seed for c in sweep} == {0, 1}
    assert read_yaml(ROOT / "params/colab/02_collapse_vs_generalization.yaml")["group_size"] >= len(sweep)
    assert main(["reproduce", "--scale", "colab", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "02_collapse_vs_generalization: 22 runs, 2200 model-epochs to train" in out
    # chapter 6: seed 1's dense network (150) and 2 seeds x (round 0 + 4 rounds x ticket and control) x 50 epochs
    assert "06_lottery_tickets: 19 runs, 1050 model-epochs to train" in out
    assert "CPU, 2 cores: 31.2 h for 3400 model-epochs" in out      # 3400 x 33 s
    assert "H200 GPU: 50.5 min for 3400 model-epochs" in out        # 1200 x 2.03 s alone + 2200 x 0.27 s batched


@pytest.mark.slow
def test_ctrl_c_keeps_the_previous_build_and_says_so_in_one_line(tmp_path):
    project = tmp_path / "project"
    _tiny_project(project, "import os, pathlib, time\n"
                           "pathlib.Path(os.environ['INC_BUILD_DIR'], 'started').touch()\ntime.sleep(120)")
    (project / "inc_utils").mkdir()
    (project / "pyproject.toml").write_text("")
    (project / "build" / "smoke").mkdir(parents=True)
    (project / "build" / "smoke" / "old.html").write_text("previous")
    proc = subprocess.Popen([sys.executable, "-m", "inc_utils", "reproduce"], cwd=project, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while time.time() < deadline and not list((project / "build").glob(".smoke.building-*/started")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == "[1/1] 01_tiny ...\n"
    assert err.startswith("interrupted: chapters finished: none; ") and err.count("\n") == 1, err
    assert f"{project / 'build' / 'smoke'} is unchanged" in err
    assert [p.name for p in (project / "build" / "smoke").iterdir()] == ["old.html"]
    assert not list((project / "build").glob(".smoke.building-*"))


@pytest.mark.parametrize("scale", ["smoke", "cpu", "colab", "paper"])
def test_chapter6_prunes_chapter1s_network_to_at_least_90_percent(scale):
    ch6 = read_yaml(ROOT / f"params/{scale}/06_lottery_tickets.yaml")
    ch1 = read_yaml(ROOT / f"params/{scale}/01_intermediate_nc.yaml")["experiments"][0]
    assert configs_in(ch6)[0] == configs_in({"experiment": ch1})[0]  # the same run: a cache hit after chapter 1
    assert 1 - (1 - ch6["rate"]) ** ch6["rounds"] >= 0.9
    # the dry run and a sweep list every network the chapter trains (but the shallow ones): dense per
    # seed, then each seed's rounds (round 0 and a ticket and a random control per later round),
    # prerequisites first
    listed = configs_in(ch6)
    seeds, rounds = ch6["seeds"], ch6["rounds"]
    assert len(listed) == len({c.name for c in listed}) == len(seeds) * (2 + 2 * rounds)
    assert [c.seed for c in listed[:len(seeds)]] == seeds and not any(c.is_ticket for c in listed[:len(seeds)])
    position = {(c.seed, c.ticket_round, c.ticket_random): i for i, c in enumerate(listed)}
    for c in listed[len(seeds):]:
        assert c.ticket_parent == listed[seeds.index(c.seed)].name and c.epochs == ch6["round_epochs"]
        if c.ticket_round > 1:
            assert position[c.seed, c.ticket_round - 1, False] < position[c.seed, c.ticket_round, c.ticket_random]
    assert ch6["output_rate"] < ch6["rate"] and ch6["rewind_epoch"] in ch1["checkpoints"]

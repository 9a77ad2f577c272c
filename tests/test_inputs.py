"""Hostile inputs: every one is refused with one line (the typed error, or exit status 2 on the
command line), never a traceback, and no run folder is left behind.

Property tests (Hypothesis, derandomized with a bounded number of examples and no example
database, so they take seconds and repeat exactly) generate configs, ``--set`` values, IDX
headers and checkpoint contents; the named cases below them are the reproducers of issue 21.
"""
import gzip
import io
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inc_utils.__main__ import main
from inc_utils.config import BRIEF_LIMIT, ConfigError, RunConfig, brief, from_dict, parse_overrides
from inc_utils.data import DataFileError, load_dataset, load_splits, read_idx
from inc_utils.models import build_for
from inc_utils.runs import CorruptCheckpointError, Run, checkpoint_problem
from inc_utils.train import train

FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
TINY = RunConfig(dataset="digits", n_per_class=20, depth=2, width=16, epochs=3, lr_milestones=[])
KEYS = list(TINY.to_dict())

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**200, 2**200), st.floats(),
                    st.text(max_size=30), st.sampled_from(["mlp", "digits", "mse", "cpu", "1e-3"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=8)


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and len(text) < 2000, text[:300]
    return text


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), values, max_size=6))
def test_any_config_is_a_run_config_or_one_line(fields):
    try:
        config = from_dict({**TINY.to_dict(), **fields})
    except ConfigError as err:
        _one_line(err)
        return
    assert config.checkpoint_epochs()[-1] == config.epochs and len(config.name) < 100


@FUZZ
@given(st.sampled_from(KEYS), st.text(max_size=40))
def test_any_set_value_parses_or_is_one_line(key, text):
    try:
        from_dict({**TINY.to_dict(), **parse_overrides([f"{key}={text}"])})
    except ConfigError as err:
        _one_line(err)


@FUZZ
@given(values)
def test_brief_is_bounded(value):
    assert len(brief(value)) <= BRIEF_LIMIT


@FUZZ
@given(st.integers(0, 255), st.integers(0, 20), st.lists(st.integers(0, 2**32 - 1), max_size=20),
       st.binary(max_size=64), st.booleans())
def test_any_idx_header_reads_or_is_one_line(dtype, ndim, dims, body, gz):
    payload = bytes([0, 0, dtype, ndim]) + struct.pack(f">{len(dims)}I", *dims) + body
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("x.idx.gz" if gz else "x.idx")
        path.write_bytes(gzip.compress(payload) if gz else payload)
        try:
            array = read_idx(path)
        except DataFileError as err:
            assert str(path) in _one_line(err)
            return
    assert array.ndim == ndim and array.shape == tuple(dims[:ndim])


MODEL = build_for(TINY, load_dataset("digits", "test"))
WEIGHTS = MODEL.state_dict()
tensors = st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
                    st.lists(st.integers(0, 3), max_size=3).map(tuple), st.sampled_from([torch.float32, torch.uint8,
                                                                                         torch.long]))
model_dicts = st.one_of(st.just(WEIGHTS),
                        st.dictionaries(st.sampled_from(list(WEIGHTS)) | st.text(max_size=8), tensors, max_size=4),
                        st.fixed_dictionaries({k: tensors for k in WEIGHTS}), values)
fields = st.fixed_dictionaries({}, optional={
    "epoch": st.integers(-5, 5) | values, "model": model_dicts, "optimizer": st.none() | values,
    "order_rng": tensors | values, "torch_rng": st.just(torch.get_rng_state()) | tensors, "log": st.lists(values),
    "lr": st.floats() | values, "stack": st.fixed_dictionaries({"size": st.integers(-2, 4), "row": st.integers(-2, 4)})})


@FUZZ
@given(fields)
def test_any_checkpoint_content_fits_the_model_or_is_refused(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with tempfile.TemporaryDirectory() as folder:
        run = Run(Path(folder))
        from inc_utils.runs import save_checkpoint_bytes
        save_checkpoint_bytes(run.checkpoint_path(1), buffer.getvalue())
        try:
            loaded = run.load_checkpoint(1, like=MODEL, resume=True)
        except CorruptCheckpointError as err:
            _one_line(err)
            return
    MODEL.load_state_dict(loaded["model"])                      # what resume, measure and prune then do
    assert checkpoint_problem(loaded, MODEL, resume=True) is None and isinstance(loaded["epoch"], int)


# --------------------------------------------------------------------------- the named cases


def _config(tmp_path, **change) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY.to_dict(), **change}))
    return str(path)


def _exit_2_one_line(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err


@pytest.mark.parametrize("argv, fragment", [
    (["--set", "seed=9223372036854775808"], "seed must lie in [0, 2**63 - 1]"),
    (["--set", "width=1000000000000000000000000000000"], "cannot build mlp2"),
    (["--set", "epochs=1000000000", "checkpoint_every=1"], "epochs must be <= 100000"),
    (["--set", "lr=0.1", "lr=0.2"], "key 'lr' is given twice"),
    (["--device", "meta"], "trains on 'cpu', 'cuda' or 'mps' only"),
    (["--device", "xpu"], "trains on 'cpu', 'cuda' or 'mps' only"),
    (["--data-dir", "/no/such/folder", "--set", "dataset=mnist"], "does not exist"),
])
def test_values_that_passed_validation_then_crashed_are_one_line(tmp_path, capsys, argv, fragment):
    runs = tmp_path / "runs"
    _exit_2_one_line(capsys, ["train", _config(tmp_path), "--runs-dir", str(runs), *argv], fragment)
    assert not runs.exists() or not any(runs.iterdir())


def test_nested_aliases_make_a_short_error(tmp_path, capsys):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines + ["lr: *a8"]) + "\n")
    assert len(path.read_bytes()) < 600
    with pytest.raises(ConfigError) as err:
        from_dict({**TINY.to_dict(), **yaml.safe_load(path.read_text())})
    assert len(str(err.value)) < 300


def test_command_line_numbers_and_folders(tmp_path, capsys, monkeypatch):
    _exit_2_one_line(capsys, ["--threads", "100000", "runs", "--runs-dir", str(tmp_path)], "(4 per core)")
    monkeypatch.setenv("INC_THREADS", "1")
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "x.yaml", "--jobs", "0"])
    assert exit_.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    _exit_2_one_line(capsys, ["runs", "--runs-dir", str(tmp_path / "missing")], "no such directory")
    (tmp_path / "file").write_text("")
    _exit_2_one_line(capsys, ["train", _config(tmp_path), "--runs-dir", str(tmp_path / "file")], "Not a directory")


def _mnist(folder: Path, split: str, images: bytes, labels: bytes, gz=False) -> None:
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, payload in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(payload) if gz else payload)


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.mark.parametrize("images, labels, fragment", [
    (_idx(np.zeros((0, 28, 28), np.uint8)), _idx(np.zeros(0, np.uint8)), "holds no test examples"),
    (bytes([0, 0, 8, 255]) + b"\0" * 1020, _idx(np.zeros(2, np.uint8)), "has 255 dimensions"),
    (bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1), _idx(np.zeros(2, np.uint8)),
     "is not a dataset this package reads"),
])
def test_damaged_idx_files_are_one_line(tmp_path, images, labels, fragment):
    _mnist(tmp_path / "mnist", "test", images, labels)
    with pytest.raises(DataFileError, match=fragment) as err:
        load_dataset("mnist", "test", root=tmp_path)
    assert "\n" not in str(err.value)


def test_corrupt_gzip_and_a_gzip_bomb_are_read_only_as_far_as_the_header(tmp_path):
    good = _idx(np.zeros(3, np.uint8))
    _mnist(tmp_path / "a" / "mnist", "test", good, good, gz=True)
    path = tmp_path / "a" / "mnist" / "t10k-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[-8:] = b"\xff" * 8                                     # damaged checksum and length
    path.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match="cannot read"):
        load_dataset("mnist", "test", root=tmp_path / "a")
    bomb = bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28) + b"\0" * (200 * 2**20)  # 200 MB of zeros, 10 images
    _mnist(tmp_path / "b" / "mnist", "test", bomb, _idx(np.zeros(10, np.uint8)), gz=True)
    assert (tmp_path / "b" / "mnist" / "t10k-images-idx3-ubyte.gz").stat().st_size < 300_000
    with pytest.raises(DataFileError, match=r"has 7857\+ bytes"):  # header + 7,840 bytes + 1, not 200 MB
        load_dataset("mnist", "test", root=tmp_path / "b")


def test_splits_of_different_image_sizes_are_one_line(tmp_path):
    _mnist(tmp_path / "mnist", "train", _idx(np.zeros((10, 28, 28), np.uint8)), _idx(np.arange(10, dtype=np.uint8)))
    _mnist(tmp_path / "mnist", "test", _idx(np.zeros((10, 20, 20), np.uint8)), _idx(np.arange(10, dtype=np.uint8)))
    with pytest.raises(DataFileError, match=r"test images are \(1, 20, 20\), training images \(1, 28, 28\)"):
        load_splits(TINY.replace(dataset="mnist", n_per_class=None), "cpu", tmp_path)


def test_cifar_labels_out_of_range_are_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 2**70]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(batch))
    with pytest.raises(DataFileError, match=r"labels must lie in \[0, 10\), found 0..1180591620717411303424"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_a_checkpoint_of_the_wrong_shape_falls_back_everywhere(tmp_path, capsys):
    """It passes its checksum and loads as tensors, but does not fit the model: resume, measure
    and prune all use the previous checkpoint, with a warning."""
    config = TINY.replace(checkpoints=[2], epochs=3)
    run = train(config, runs_dir=tmp_path / "runs", progress=False)
    state = run.load_checkpoint(3)
    state["model"] = {k: torch.zeros(7) for k in state["model"]}
    run.save_checkpoint(3, state)
    with pytest.warns(UserWarning, match="weight .* the run's model has"):
        assert main(["measure", run.name, "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "at epoch 2" in capsys.readouterr().out
    (run.path / "metrics.json").write_text("{damaged")           # a damaged cache is measured again
    with pytest.warns(UserWarning):
        assert main(["measure", run.name, "--runs-dir", str(tmp_path / "runs")]) == 0
    with pytest.warns(UserWarning, match="skipping"):
        assert main(["prune", run.name, "--layer", "1", "--runs-dir", str(tmp_path / "runs")]) == 0
    run.set_status("running")
    with pytest.warns(UserWarning, match="skipping"):
        train(config, runs_dir=tmp_path / "runs", progress=False)
    assert run.status()["status"] == "done" and torch.equal(run.load_checkpoint(3)["model"]["features.1.weight"],
                                                           train(config, runs_dir=tmp_path / "ref", progress=False)
                                                           .load_checkpoint(3)["model"]["features.1.weight"])

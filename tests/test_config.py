import re

import pytest

from inc_utils.config import ConfigError, RunConfig, from_dict, load_config, parse_overrides


def test_defaults_are_the_smoke_setting_and_hash_is_stable():
    cfg = RunConfig()
    assert (cfg.dataset, cfg.arch, cfg.depth, cfg.width, cfg.loss) == ("digits", "mlp", 8, 256, "mse")
    assert cfg.hash == RunConfig().hash and len(cfg.hash) == 12
    assert cfg.name == f"digits-mlp8-{cfg.hash}"


def test_the_hash_of_a_config_stating_its_milestones_is_pinned():
    """Run folders are caches named by this hash: it must not change across versions (computed
    before the milestone defaults became fractions of ``epochs``)."""
    smoke = {"dataset": "digits", "arch": "mlp", "depth": 8, "width": 256, "epochs": 400, "lr": 0.05,
             "weight_decay": 0.005, "lr_milestones": [114, 228], "checkpoints": [10, 25, 50, 100, 200],
             "eval_every": 10}
    assert from_dict(smoke).name == "digits-mlp8-0307fd62a436"
    convnet = {"dataset": "fashion_mnist", "arch": "convnet", "depth": 6, "width": 64, "epochs": 350,
               "lr_milestones": [100, 200]}
    assert from_dict(convnet).name == "fashion_mnist-convnet6-4d2ca6519055"


@pytest.mark.parametrize("epochs, milestones", [(350, [100, 200]), (400, [114, 228]), (50, [14, 28]),
                                                (150, [42, 85]), (2, [1, 1]), (1, [1, 1])])
def test_milestones_not_given_are_the_thesis_fractions_of_training(epochs, milestones):
    config = from_dict({"epochs": epochs})                        # refused before: [114, 228] outside [1, 50]
    assert config.lr_milestones == milestones
    assert config.hash == from_dict({"epochs": epochs, "lr_milestones": milestones}).hash


def test_hash_changes_with_any_field_and_ignores_int_vs_float():
    base = RunConfig()
    assert base.replace(lr=0.1).hash != base.hash
    assert base.replace(seed=1).hash != base.hash
    assert base.replace(lr_milestones=[100, 200]).hash != base.hash
    assert RunConfig(lr=1).hash == RunConfig(lr=1.0).hash


@pytest.mark.parametrize("data, fragment", [
    ({"lrr": 0.1}, "unknown config key 'lrr' (did you mean 'lr'?)"),
    ({"lr": "fast"}, "lr: expected float"),
    ({"depth": 2.5}, "depth: expected int"),
    ({"bias": "yes"}, "bias: expected bool"),
    ({"checkpoints": [1, "x"]}, "checkpoints: expected list[int]"),
    ({"arch": "mlpp"}, "arch: unknown name 'mlpp' (did you mean 'mlp'?)"),
    ({"dataset": "cifar"}, "dataset: unknown name 'cifar'"),
    ({"loss": "l2"}, "loss: unknown name 'l2'"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"lr": -1.0}, "lr must be > 0"),
    ({"epochs": 10, "lr_milestones": [20]}, "must lie in [1, epochs=10]"),
    ({"arch": "resnet", "depth": 20}, "depth: ResNet depth must be one of (18, 34, 50)"),
    ({"arch": "convnet", "depth": 1}, "depth: ConvNet needs depth >= 2"),
])
def test_bad_configs_are_rejected_with_the_key_named(data, fragment):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert fragment in str(err.value)


def test_yaml_loading_with_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("depth: 3\nwidth: 32\nlr_milestones: [5]\nepochs: 10\n")
    cfg = load_config(path, parse_overrides(["lr=0.2", "checkpoints=[2, 4]"]))
    assert (cfg.depth, cfg.width, cfg.lr, cfg.checkpoints) == (3, 32, 0.2, [2, 4])
    assert cfg.checkpoint_epochs() == [2, 4, 10]
    assert cfg.replace(checkpoint_every=3).checkpoint_epochs() == [2, 3, 4, 6, 9, 10]


def test_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])


def test_floats_without_a_dot_are_floats_in_files_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 2e-3\nweight_decay: 5E-4\nlr_factor: 1.e-1\n")
    cfg = load_config(path, parse_overrides(["momentum=9e-1"]))
    assert (cfg.lr, cfg.weight_decay, cfg.lr_factor, cfg.momentum) == (0.002, 0.0005, 0.1, 0.9)
    assert parse_overrides(["a=e5", "b=0x10", "c=1_000"]) == {"a": "e5", "b": 16, "c": 1000}


@pytest.mark.parametrize("text, fragment", [
    ("lr: 0.1\nlr: 0.2\n", "key 'lr' is given twice at line 2"),
    ("", "is empty"),
    ("lr: !!python/object/apply:os.system [ls]\n", "could not determine a constructor"),
    ("lr: .nan\n", "lr must be a finite number, got nan"),
    ("weight_decay: .inf\n", "weight_decay must be a finite number, got inf"),
])
def test_config_file_mistakes_are_one_line_errors(tmp_path, text, fragment):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_binary_config_and_bad_overrides_are_one_line_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config(path)
    for item, fragment in [("lr=[1,", "--set lr=[1,: not valid YAML"), ("lr=!!python/name:os.system", "constructor"),
                           ("=1", "key=value")]:
        with pytest.raises(ConfigError, match=re.escape(fragment)) as err:
            parse_overrides([item])
        assert "\n" not in str(err.value)

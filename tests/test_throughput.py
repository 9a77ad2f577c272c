"""Training-time estimates: model-epochs left x measured seconds per model-epoch."""
import pandas as pd

from inc_utils.throughput import describe, estimate, networks, read_table


def test_estimate_sums_measured_networks_and_counts_the_rest(tmp_path):
    path = tmp_path / "throughput.yaml"
    net = "dataset: digits, arch: mlp, depth: 8, width: 256"
    path.write_text(f"- {{device: cpu, {net}, seconds: 0.5}}\n"
                    f"- {{device: T4 GPU, {net}, batched: false, seconds: 0.4}}\n"
                    f"- {{device: T4 GPU, {net}, batched: true, seconds: 0.1}}\n")
    plan = pd.DataFrame({"dataset": ["digits", "digits", "cifar10"], "arch": "mlp", "depth": [8, 8, 10],
                         "width": [256, 256, 1024], "batched": [False, True, True],
                         "model_epochs_left": [3600, 3600, 1000]})
    table = estimate(plan, read_table(path)).set_index("device")
    assert table.loc["cpu"].tolist() == [1.0, 7200, 1000]                      # 7200 x 0.5 s = 1 h
    assert table.loc["T4 GPU"].tolist() == [0.5, 7200, 1000]                   # 1440 s alone + 360 s batched
    text = describe(table.reset_index(), "t.yaml")
    assert "  cpu: 1.0 h for 7200 model-epochs, plus 1000 model-epochs of networks not measured on it" in text
    assert "  T4 GPU: 30.0 min for 7200 model-epochs" in text


def test_runs_of_an_mlp_sweep_train_batched_unless_turned_off():
    base = {"dataset": "digits", "arch": "mlp", "depth": 3, "epochs": 5, "lr_milestones": []}
    params = {"experiments": [base], "sweeps": {"s": {"base": base, "grid": {"lr": [0.1, 0.2]}},
                                                 "one": {"base": base, "grid": {"lr": [0.3]}}}}
    assert networks(params).batched.tolist() == [False, True, True, False]
    assert not networks({**params, "batched": False}).batched.any()
    assert networks(params)[["dataset", "depth"]].iloc[0].tolist() == ["digits", 3]

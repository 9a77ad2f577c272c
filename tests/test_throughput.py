"""Training-time estimates: model-epochs left x measured seconds per model-epoch."""
import pandas as pd

from inc_utils.throughput import describe, estimate, read_table


def test_estimate_sums_measured_networks_and_counts_the_rest(tmp_path):
    path = tmp_path / "throughput.yaml"
    path.write_text("- {device: cpu, dataset: digits, arch: mlp, depth: 8, width: 256, seconds: 0.5}\n"
                    "- {device: T4 GPU, dataset: digits, arch: mlp, depth: 8, width: 256, seconds: 0.1}\n"
                    "- {device: T4 GPU, dataset: cifar10, arch: mlp, depth: 10, width: 1024, seconds: 3.6}\n")
    plan = pd.DataFrame({"dataset": ["digits", "digits", "cifar10"], "arch": "mlp", "depth": [8, 8, 10],
                         "width": [256, 256, 1024], "model_epochs_left": [3600, 3600, 1000]})
    table = estimate(plan, read_table(path)).set_index("device")
    assert table.loc["cpu"].tolist() == [1.0, 7200, 1000]                      # 7200 x 0.5 s = 1 h
    assert table.loc["T4 GPU"].tolist() == [1.2, 8200, 0]                      # 720 s + 3600 s
    text = describe(table.reset_index(), "t.yaml")
    assert "cpu: 1.0 h for 7200 model-epochs, plus 1000 model-epochs of networks not measured on it" in text
    assert "T4 GPU: 1.2 h for 8200 model-epochs" in text and "not measured yet" not in text
    assert "GPU: not measured yet" in describe(table.reset_index().iloc[:1], "t.yaml")

"""The README's Python examples run as written and give what they say."""
import re
from pathlib import Path

import torch

from inc_utils.__main__ import main

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_measure_your_own_network_example(capsys):
    (block,) = python_blocks()
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    table, per_layer = namespace["table"], namespace["per_layer"]
    assert set(table.split) == {"train", "test"}
    assert per_layer.index.tolist() == [0, 1, 2, 3]              # input and the 3 hidden layers
    net_acc = table.query("measure == 'net_acc'").set_index("split")["value"]
    assert net_acc["train"] > 0.95 and net_acc["test"] > 0.9     # the example network trains
    rel = per_layer["rel_trace_w"]
    assert rel.is_monotonic_decreasing and per_layer["ncc_acc"].iloc[-1] > per_layer["ncc_acc"].iloc[0]
    below = (rel < 0.2)[::-1].cummin()[::-1]                     # below from this layer through the last
    expected = int(below.idxmax()) if below.any() else None
    printed = capsys.readouterr().out
    assert "rel_trace_w" in printed and f"layer of collapse: {expected}" in printed


def test_command_line_examples_name_files_that_exist(tmp_path, capsys):
    commands = [line.split("#")[0].split() for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
                for line in block.splitlines() if line.startswith("inc ")]
    paths = [word for words in commands for word in words if word.startswith("params/")]
    assert len(paths) >= 3 and all((README.parent / p).is_file() for p in paths), paths

    chapter_2 = str(README.parent / "params/paper/02_collapse_vs_generalization.yaml")
    assert main(["sweep", chapter_2, "--dry-run", "--runs-dir", str(tmp_path)]) == 0
    assert "297 runs, 297 to train, 103950 model-epochs" in capsys.readouterr().out

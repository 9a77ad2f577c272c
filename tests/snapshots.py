"""Copies of the working tree for tests that install, push or serve the project."""
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A scale small enough to run chapter 1 in seconds; written into copies only, which also shows
# that a new parameter file reaches the installed package without touching pyproject.toml.
TINY_SCALE = ("experiments:\n"
              "  - {dataset: digits, arch: mlp, depth: 3, width: 32, epochs: 20, lr: 0.05, weight_decay: 0.005,\n"
              "     lr_milestones: [10], checkpoints: [10], eval_every: 10}\n"
              "device: cpu\n")


def snapshot(dest: Path, tiny_scale: bool = False) -> Path:
    """A copy of the working tree as git sees it (tracked and new files, nothing ignored)."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    if tiny_scale:
        (dest / "params" / "tiny").mkdir()
        (dest / "params" / "tiny" / "01_intermediate_nc.yaml").write_text(TINY_SCALE)
    return dest

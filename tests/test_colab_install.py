"""Colab, played through: install cell as written, against a local bare `origin`, in a fresh
virtualenv without the project, a chapter run from an empty directory outside the repository.

The virtualenv sees the heavy dependencies (torch, jupyter...) of the test environment through a
folder of links to its site-packages that leaves this project out, so nothing is downloaded;
pip runs offline (no index, no build isolation), as the install cell's command stays as written.
"""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from snapshots import snapshot

pytestmark = pytest.mark.slow
CHAPTER = "01_intermediate_nc"

# Runs in the fresh virtualenv, in an empty folder standing for Colab's /content: import a stub
# google.colab (Colab's kernel has it), then run the notebook's code cells in one namespace, the
# parameters cell edited as a user would (a scale by name, a Drive folder for the runs).
RUNNER = r'''
import json, pathlib, sys, types
notebook, gdrive = sys.argv[1], pathlib.Path(sys.argv[2])
drive = types.ModuleType("google.colab.drive")
def mount(mountpoint):                     # Drive appears as <mountpoint>/MyDrive, kept across sessions
    pathlib.Path(mountpoint).mkdir(parents=True, exist_ok=True)
    pathlib.Path(mountpoint, "MyDrive").symlink_to(gdrive)
drive.mount = mount
colab = types.ModuleType("google.colab")
colab.drive = drive
sys.modules.update({"google": types.ModuleType("google"), "google.colab": colab, "google.colab.drive": drive})
namespace = {"__name__": "__main__"}
for cell in json.load(open(notebook))["cells"]:
    if cell["cell_type"] != "code":
        continue
    source = "".join(cell["source"])
    if "parameters" in cell["metadata"].get("tags", []):
        source += '\nscale = "tiny"\ndrive_folder = "inc-runs"\n'
    exec(compile(source, "cell", "exec"), namespace)
    if "colab-install" in cell["metadata"].get("tags", []):
        import inc_utils.session              # Colab mounts Drive at /content/drive: here, under cwd
        inc_utils.session.DRIVE_MOUNT = pathlib.Path.cwd() / "drive"
print(json.dumps({"inc_utils": sys.modules["inc_utils"].__file__, "results": list(namespace["results"])}))
'''


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=cwd,
                   check=True, capture_output=True)


def fresh_venv(path: Path) -> Path:
    """A virtualenv that sees this environment's packages (pip included) except this project; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    heavy = path / "heavy-deps"
    heavy.mkdir()
    ours = ("inc_utils", "__editable__", "__editable___inc_utils")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(ours):
            (heavy / entry.name).symlink_to(entry)
    (site / "heavy-deps.pth").write_text(f"{heavy}\n")
    return python


def test_install_cell_installs_from_origin_and_a_chapter_runs_from_an_empty_folder(tmp_path):
    src = snapshot(tmp_path / "src", tiny_scale=True)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "snapshot")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(origin))
    git(src, "remote", "add", "origin", str(origin))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INC_") and k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "inc_utils", "colab"], cwd=src, check=True, capture_output=True,
                   env={**env, "PYTHONPATH": str(src)})
    git(src, "commit", "-q", "-am", "inc colab")
    git(src, "push", "-q", "origin", "main")

    # What Colab opens: the notebook as it is on origin.
    notebook = tmp_path / f"{CHAPTER}.ipynb"
    notebook.write_text(subprocess.run(["git", "show", f"main:notebooks/{CHAPTER}.ipynb"], cwd=origin,
                                       capture_output=True, text=True, check=True).stdout)
    install = [c.source for c in nbformat.read(notebook, 4).cells if "colab-install" in c.metadata.get("tags", [])]
    assert len(install) == 1 and f'"inc-utils[notebooks] @ git+file://localhost{origin}"' in install[0]

    python = fresh_venv(tmp_path / "venv")
    content, gdrive = tmp_path / "content", tmp_path / "gdrive"
    content.mkdir()
    gdrive.mkdir()
    (tmp_path / "runner.py").write_text(RUNNER)
    offline = {"PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "MPLBACKEND": "Agg", "INC_PROGRESS": "0"}
    out = subprocess.run([python, str(tmp_path / "runner.py"), str(notebook), str(gdrive)], cwd=content,
                         env={**env, **offline}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])

    installed = Path(report["inc_utils"]).parent
    assert installed.is_relative_to(tmp_path / "venv")                          # pip put it there
    shipped = {p.relative_to(installed / "params"): p.read_bytes() for p in (installed / "params").rglob("*.yaml")}
    assert shipped == {p.relative_to(src / "params"): p.read_bytes() for p in (src / "params").rglob("*.yaml")}
    assert report["results"] == ["MLP-3 on digits"]                             # the tiny scale was loaded
    (run,) = (gdrive / "inc-runs" / "runs").iterdir()                           # runs on "Drive"
    assert json.loads((run / "status.json").read_text())["status"] == "done"
    assert (run / "checkpoints" / "epoch_0020.pt").exists()
    figures = content / "build" / "lab" / "figures"                             # figures beside the user
    names = {p.name for p in figures.iterdir()}
    assert {"ch1_nc1.png", "ch1_nc1.pdf"} <= names and any(n.startswith("ch1_grid_") for n in names)
    assert sorted(p.name for p in content.iterdir()) == ["build", "drive"]
    assert subprocess.run(["git", "status", "--porcelain"], cwd=src, capture_output=True, text=True).stdout == ""

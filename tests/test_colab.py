"""`inc colab`: the address from git, written into pyproject, every notebook and the README;
the params that ship inside the package."""
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest
from snapshots import snapshot

from inc_utils.__main__ import main
from inc_utils.colab import (COLAB_METADATA, chapter_sources, github_repo, record_url, recorded_url,
                             render_notebook, render_readme, repository_url, update)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = chapter_sources(ROOT)


@pytest.mark.parametrize("remote", ["https://github.com/ann/inc", "https://github.com/ann/inc.git",
                                    "git@github.com:ann/inc.git", "ssh://git@github.com/ann/inc.git",
                                    "https://github.com/ann/inc/"])
def test_github_remotes_become_one_https_address(remote, tmp_path):
    assert repository_url(remote, tmp_path) == "https://github.com/ann/inc"
    assert github_repo(repository_url(remote, tmp_path)) == "ann/inc"


def test_other_remotes_stay_installable_but_get_no_badge(tmp_path):
    assert repository_url("https://gitlab.com/ann/inc.git", tmp_path) == "https://gitlab.com/ann/inc.git"
    assert repository_url("me@example.org:repos/inc.git", tmp_path) == "ssh://me@example.org/repos/inc.git"
    assert repository_url("../origin.git", tmp_path / "clone") == f"file://localhost{tmp_path}/origin.git"
    assert repository_url("file:///srv/inc.git", tmp_path) == "file://localhost/srv/inc.git"
    assert github_repo("https://gitlab.com/ann/inc.git") is None and github_repo(None) is None


def test_pyproject_gets_the_address_and_keeps_everything_else():
    text = (ROOT / "pyproject.toml").read_text()
    assert recorded_url(text) is None                  # no remote yet: no address anywhere
    first = record_url(text, "https://github.com/ann/inc")
    assert recorded_url(first) == "https://github.com/ann/inc"
    assert first.replace('[project.urls]\nRepository = "https://github.com/ann/inc"\n\n', "") == text
    second = record_url(first.replace("[project.urls]\n", '[project.urls]\nHomepage = "https://x.org"\n'),
                        "https://github.com/bob/inc")
    assert recorded_url(second) == "https://github.com/bob/inc" and 'Homepage = "https://x.org"' in second
    assert second.count("Repository") == 1


def _cells(text):
    return re.split(r"(?m)^(?=# %%)", text)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_install_cell_and_badge_follow_the_address_and_nothing_else_changes(source):
    text, nb = source.read_text(), f"notebooks/{source.stem}.ipynb"
    github = render_notebook(text, nb, "https://github.com/ann/inc", "main")
    cells = _cells(github)
    badge = next(c for c in cells if "colab-badge" in c.splitlines()[0])
    assert (f"(https://colab.research.google.com/github/ann/inc/blob/main/notebooks/{source.stem}.ipynb)"
            in badge)
    install = cells[cells.index(badge) + 1]
    assert '"inc-utils[notebooks] @ git+https://github.com/ann/inc"' in install
    assert render_notebook(github, nb, "https://github.com/ann/inc", "main") == github     # idempotent
    assert render_notebook(github, nb, None, "main") == text                                 # and reversible
    other = render_notebook(text, nb, "file:///srv/inc.git", "main")
    assert "colab-badge" not in other and "git+file:///srv/inc.git" in other
    changed = [(a, b) for a, b in zip(_cells(text), _cells(other)) if a != b]
    assert len(changed) == 1 and "colab-install" in changed[0][1]


def test_an_old_install_cell_is_replaced_and_a_missing_one_added_before_the_parameters():
    old = ('# %% [markdown]\n# # Title\n\n# %%\n# Colab: install\nimport sys\nINC_REPO = "git+https://x"\n'
           'if "google.colab" in sys.modules:\n    pass\n\n# %% tags=["parameters"]\nalpha = 1\n')
    new = render_notebook(old, "notebooks/05_x.ipynb", None, "main")
    assert "INC_REPO" not in new and new.count("colab-install") == 1
    bare = '# %% [markdown]\n# # Title\n\n# %% tags=["parameters"]\nalpha = 1\n'
    added = _cells(render_notebook(bare, "notebooks/05_x.ipynb", None, "main"))
    assert ["colab-install" in c.splitlines()[0] for c in added[1:]] == [False, True, False]
    assert added[2].endswith("\n\n") and added[3] == '# %% tags=["parameters"]\nalpha = 1\n'


def test_notebooks_and_readme_agree_with_the_recorded_address():
    url = recorded_url((ROOT / "pyproject.toml").read_text())
    for source in SOURCES:
        text = source.read_text()
        branch = (re.findall(r"/blob/([^/]+)/notebooks/", text) or ["main"])[0]
        assert render_notebook(text, f"notebooks/{source.stem}.ipynb", url, branch) == text, \
            f"{source.name} is stale, run: inc colab"
        assert {k: nbformat.read(source.with_suffix(".ipynb"), 4).metadata.get(k) for k in COLAB_METADATA} \
            == COLAB_METADATA, f"{source.stem}.ipynb lacks Colab's GPU setting, run: inc colab"
    readme = (ROOT / "README.md").read_text()
    branch = (re.findall(r"/blob/([^/]+)/notebooks/", readme) or ["main"])[0]
    assert render_readme(readme, [f"notebooks/{s.stem}.ipynb" for s in SOURCES], url, branch) == readme
    tracked = subprocess.run(["git", "-C", str(ROOT), "grep", "--untracked", "-l", "inc-companion/inc-companion",
                              "--", ".", ":!tests/test_colab.py"], capture_output=True, text=True).stdout
    assert tracked == "", f"an invented address is still written in {tracked}"


def _project_with_origin(tmp_path, remote):
    root = tmp_path / "clone"
    (root / "notebooks").mkdir(parents=True)
    (root / "inc_utils").mkdir()
    for name in ("pyproject.toml", "README.md", "jupytext.toml"):
        shutil.copy(ROOT / name, root / name)
    for source in SOURCES[:2]:
        shutil.copy(source, root / "notebooks")
        shutil.copy(source.with_suffix(".ipynb"), root / "notebooks")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    if remote:
        subprocess.run(["git", "-C", str(root), "remote", "add", "origin", remote], check=True)
    return root


def test_inc_colab_writes_everything_from_a_github_ssh_origin(tmp_path, monkeypatch, capsys):
    root = _project_with_origin(tmp_path, "git@github.com:ann/inc.git")
    monkeypatch.chdir(root / "notebooks")
    assert main(["colab", "--branch", "dev"]) == 0
    assert "written for https://github.com/ann/inc" in capsys.readouterr().out
    assert recorded_url((root / "pyproject.toml").read_text()) == "https://github.com/ann/inc"
    readme = (root / "README.md").read_text()
    for source in SOURCES[:2]:
        link = f"https://colab.research.google.com/github/ann/inc/blob/dev/notebooks/{source.stem}.ipynb"
        text = (root / "notebooks" / source.name).read_text()
        assert link in text and link in readme
        paired = root / "notebooks" / f"{source.stem}.ipynb"
        from_py = jupytext.reads(text, fmt="py:percent")
        assert [c.source for c in jupytext.read(paired).cells] == [c.source for c in from_py.cells]
        assert nbformat.read(paired, 4).metadata["accelerator"] == "GPU"
    assert 'pip install "inc-utils[notebooks] @ git+https://github.com/ann/inc"' in readme


def test_inc_colab_without_origin_invents_nothing(tmp_path, monkeypatch, capsys):
    root = _project_with_origin(tmp_path, None)
    monkeypatch.chdir(root)
    assert update(root) is None
    texts = [p.read_text() for p in (root / "notebooks").iterdir()] + [(root / "README.md").read_text()]
    assert not any("colab.research.google.com/github" in t or "git+https" in t for t in texts)
    monkeypatch.chdir(tmp_path)
    assert main(["colab"]) == 2
    assert "not inside a checkout" in capsys.readouterr().err


def test_the_params_shipped_in_the_package_equal_the_repository_copy(tmp_path):
    src = snapshot(tmp_path / "src", tiny_scale=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        shipped = {n.removeprefix("inc_utils/params/"): z.read(n) for n in names
                   if n.startswith("inc_utils/params/")}
    source = {str(p.relative_to(src / "params")): p.read_bytes() for p in (src / "params").rglob("*.yaml")}
    assert "tiny/01_intermediate_nc.yaml" in shipped and "colab/01_intermediate_nc.yaml" in shipped
    assert shipped == source
    modules = {str(p.relative_to(src)) for p in (src / "inc_utils").rglob("*.py")}
    assert modules <= set(names), f"modules missing from the wheel: {sorted(modules - set(names))}"

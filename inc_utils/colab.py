"""``inc colab``: the repository's public address written wherever Colab users need it.

The address has one source, ``Repository`` under ``[project.urls]`` in pyproject.toml, which
``inc colab`` takes from ``git remote get-url origin`` (GitHub https and ssh forms become
``https://github.com/<owner>/<repo>``). From it, every ``notebooks/NN_*.py`` gets its install
cell (tag ``colab-install``) and, for a GitHub address, an Open-in-Colab badge cell before it
(tag ``colab-badge``); the paired ``.ipynb`` is re-synced and asks Colab for a GPU; the README's
block between ``COLAB_START`` and ``COLAB_END`` gets the badges and the install line. Without an
address there is no badge, and the cell and README say how to install.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
COLAB_START = "<!-- COLAB_START: written by `inc colab` from pyproject.toml [project.urls] -->"
COLAB_END = "<!-- COLAB_END -->"
_GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
                     r"(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")
_SCP_LIKE = re.compile(r"^(?P<host>[\w.-]+@[\w.-]+):(?P<path>.+)$")


# ----------------------------------------------------------------------------- the address


def origin_url(root: Path) -> str | None:
    """``git remote get-url origin`` in ``root``; None outside git or without that remote."""
    try:
        out = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"],
                             capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def repository_url(remote: str, root: Path) -> str:
    """The address pip can install from: GitHub as ``https://github.com/o/r``, other URLs as
    they are, ``user@host:path`` as ``ssh://``, a local path (relative to ``root``) as
    ``file://localhost/...`` (setuptools accepts only URLs with a host in ``[project.urls]``)."""
    remote = remote.strip()
    if m := _GITHUB.match(remote):
        return f"https://github.com/{m['owner']}/{m['repo']}"
    if remote.startswith("file:///"):
        return "file://localhost/" + remote.removeprefix("file:///")
    if "://" in remote:
        return remote
    if m := _SCP_LIKE.match(remote):
        return f"ssh://{m['host']}/{m['path']}"
    return "file://localhost" + quote((root / remote).resolve().as_posix())


def github_repo(url: str | None) -> str | None:
    """``owner/repo`` of a GitHub address, else None (Colab opens notebooks from GitHub only)."""
    m = _GITHUB.match(url or "")
    return f"{m['owner']}/{m['repo']}" if m else None


def _urls_section(pyproject_text: str) -> re.Match | None:
    return re.search(r"(?ms)^\[project\.urls\]\n(.*?)(?=^\[|\Z)", pyproject_text)


def recorded_url(pyproject_text: str) -> str | None:
    """``[project.urls] Repository`` of a pyproject.toml's text, if any."""
    section = _urls_section(pyproject_text)
    found = section and re.search(r'(?m)^Repository\s*=\s*"([^"]*)"', section.group(1))
    return found.group(1) if found else None


def record_url(pyproject_text: str, url: str) -> str:
    """The pyproject.toml text with ``[project.urls] Repository = url`` (other lines untouched)."""
    line = f'Repository = "{url}"'
    section = _urls_section(pyproject_text)
    if section is None:
        after_project = re.search(r"(?ms)^\[project\]\n.*?(?=^\[|\Z)", pyproject_text)
        at = after_project.end() if after_project else len(pyproject_text)
        return f"{pyproject_text[:at]}[project.urls]\n{line}\n\n{pyproject_text[at:]}"
    body = section.group(1)
    new_body = (re.sub(r"(?m)^Repository\s*=.*$", line, body) if re.search(r"(?m)^Repository\s*=", body)
                else f"{line}\n{body}")
    return pyproject_text[:section.start(1)] + new_body + pyproject_text[section.end(1):]


# ----------------------------------------------------------------------------- what is written


def pip_requirement(url: str) -> str:
    return f"inc-utils[notebooks] @ git+{url}"


def colab_link(repo: str, branch: str, notebook: str) -> str:
    """Colab's address of ``notebook`` (e.g. ``notebooks/01_x.ipynb``) on GitHub."""
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{notebook}"


def install_cell(url: str | None) -> str:
    """The py:percent text of a chapter's install cell."""
    head = '# %% tags=["colab-install"]\n'
    if url is None:
        return head + (
            "# Colab: this copy of the notebook names no repository to install the package from\n"
            "# (`inc colab` writes it here from the git remote). Elsewhere this cell does nothing.\n"
            "import importlib.util\n"
            "import sys\n\n"
            'if "google.colab" in sys.modules and importlib.util.find_spec("inc_utils") is None:\n'
            '    raise ModuleNotFoundError("inc_utils is not installed: run !pip install "\n'
            """                              "'inc-utils[notebooks] @ git+URL' in a cell, with URL the address "\n"""
            '                              "of the repository this notebook comes from")\n')
    return head + (
        "# Colab: install the package from its repository (torch is already there). Elsewhere this cell\n"
        "# does nothing.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n\n"
        'if "google.colab" in sys.modules and importlib.util.find_spec("inc_utils") is None:\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q",\n'
        f'                    "{pip_requirement(url)}"], check=True)\n'
        "    importlib.invalidate_caches()\n")


def badge_cell(repo: str, branch: str, notebook: str) -> str:
    return (f'# %% [markdown] tags=["colab-badge"]\n'
            f"# [![Open In Colab]({BADGE_IMAGE})]({colab_link(repo, branch, notebook)})\n")


def render_notebook(text: str, notebook: str, url: str | None, branch: str) -> str:
    """A py:percent chapter with its badge and install cells written for ``url``.

    The install cell is the one tagged ``colab-install`` (or, in older copies, the cell that
    mentions ``google.colab``); a notebook without one gets it before its parameters cell (or
    after its first cell)."""
    chunks = [c for c in re.split(r"(?m)^(?=# %%)", text) if "colab-badge" not in c.split("\n", 1)[0]]
    header, cells = chunks[0], chunks[1:]
    install = next((i for i, c in enumerate(cells) if "colab-install" in c.split("\n", 1)[0]), None)
    if install is None:
        install = next((i for i, c in enumerate(cells) if "google.colab" in c), None)
    if install is None:                                   # before the parameters, else after the title
        install = next((i for i, c in enumerate(cells) if 'tags=["parameters"]' in c.split("\n", 1)[0]),
                       min(1, len(cells)))
        cells.insert(install, "\n")
    trailing = cells[install][len(cells[install].rstrip("\n")):]
    new = install_cell(url).rstrip("\n") + max(trailing, "\n\n", key=len)
    repo = github_repo(url)
    if repo:
        new = badge_cell(repo, branch, notebook) + "\n" + new
    cells[install] = new
    return header + "".join(cells)


def render_readme(text: str, notebooks: list[str], url: str | None, branch: str) -> str:
    """The README with its Colab block (between ``COLAB_START`` and ``COLAB_END``) for ``url``."""
    repo = github_repo(url)
    if url is None:
        body = ("No public address of this repository is recorded yet (pyproject.toml `[project.urls]`), so\n"
                "the notebooks carry no Colab badge. To use them in Colab, upload a chapter's `.ipynb` and run\n"
                "`!pip install 'inc-utils[notebooks] @ git+URL'` with URL your copy's address. `inc colab` in a\n"
                "clone whose `origin` is on GitHub writes the badges and install cells.")
    else:
        body = f"Install anywhere (Colab's first cell does it): `pip install \"{pip_requirement(url)}\"`"
        if repo:
            body += "\n\n" + "\n".join(
                f"[![Open In Colab]({BADGE_IMAGE})]({colab_link(repo, branch, nb)}) `{Path(nb).stem}`  "
                for nb in notebooks)
    block = f"{COLAB_START}\n{body}\n{COLAB_END}"
    pattern = re.compile(re.escape(COLAB_START) + r".*?" + re.escape(COLAB_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no Colab block ({COLAB_START} ... {COLAB_END})")
    return pattern.sub(lambda _: block, text)


# ----------------------------------------------------------------------------- the command


def chapter_sources(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))


def _sync_ipynb(source: Path) -> None:
    """Write the paired .ipynb from ``source`` (keeping its cell ids), with Colab's GPU setting."""
    import nbformat
    from jupytext.cli import jupytext
    jupytext(["--to", "ipynb", "--update", "--quiet", str(source)])
    paired = source.with_suffix(".ipynb")
    notebook = nbformat.read(paired, as_version=4)
    if any(notebook.metadata.get(k) != v for k, v in COLAB_METADATA.items()):
        notebook.metadata.update(COLAB_METADATA)
        nbformat.write(notebook, paired)
        os.utime(source)                                  # the .py stays the newer, source copy


def update(root: Path, branch: str = "main") -> str | None:
    """``inc colab``: record origin's address (if any) and write every notebook and the README
    from the recorded one. Returns that address."""
    pyproject = root / "pyproject.toml"
    remote = origin_url(root)
    if remote:
        pyproject.write_text(record_url(pyproject.read_text(), repository_url(remote, root)))
    url = recorded_url(pyproject.read_text())
    sources = chapter_sources(root)
    for source in sources:
        text = source.read_text()
        new = render_notebook(text, f"notebooks/{source.stem}.ipynb", url, branch)
        if new != text:
            source.write_text(new)
        _sync_ipynb(source)
    readme = root / "README.md"
    text = readme.read_text()
    new = render_readme(text, [f"notebooks/{s.stem}.ipynb" for s in sources], url, branch)
    if new != text:
        readme.write_text(new)
    return url

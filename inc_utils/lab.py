"""``make lab``: JupyterLab on the repository root, with the chapters' ``.py`` files opening as
notebooks (jupytext as default viewer, from ``.jupyter/lab/settings/overrides.json``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .settings import project_root

SETTINGS = Path(".jupyter") / "lab" / "settings"


def command(root: Path, *options: str) -> list[str]:
    """The JupyterLab command line for the checkout ``root``; ``--allow-root`` only as root."""
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
            f"--LabApp.app_settings_dir={root / SETTINGS}", *options]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    return argv


def main() -> None:
    root = project_root(Path(__file__).parent) or project_root()
    if root is None:
        sys.exit("error: make lab needs a checkout of this project (pyproject.toml + inc_utils/)")
    argv = command(root, *sys.argv[1:])
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()

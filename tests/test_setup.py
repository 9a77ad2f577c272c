"""Set-up: the environment is requirements.lock, pyproject.toml and environment.yml agree with it,
Colab keeps its own torch, and the package builds without packaging warnings."""
import re
import subprocess
import sys
import tomllib
from importlib import metadata

import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from inc_utils.colab import install_cell
from snapshots import ROOT, snapshot

LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def locked() -> dict[str, Version]:
    """The lock's version of each package that applies to this interpreter and platform."""
    versions = {}
    for line in LOCK.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line):
            name, version, marker = m.groups()
            if marker is None or Marker(marker).evaluate():
                assert canonicalize_name(name) not in versions, f"{name} locked twice for this Python"
                versions[canonicalize_name(name)] = Version(version)
    return versions


def project_requirements() -> list[Requirement]:
    """Everything pyproject.toml asks for with the dev extra (the project's own extras resolved)."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    names = [*PYPROJECT["project"]["dependencies"], *extras["notebooks"], *extras["dev"]]
    return [r for r in map(Requirement, names) if canonicalize_name(r.name) != "inc-utils"]


def makefile_lock_pins() -> dict[str, str]:
    line = next(l for l in (ROOT / "Makefile").read_text().splitlines() if l.startswith("LOCK_PINS"))
    return dict(pin.split("==") for pin in line.split(":=")[1].split())


def test_the_lock_holds_every_requirement_of_pyproject_and_the_pinned_torch():
    versions = locked()
    assert len(versions) > 100                              # the whole environment, not just the top
    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in versions, f"{requirement} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(versions[name], prereleases=True), \
            f"requirements.lock has {name} {versions[name]}, pyproject.toml asks {requirement}: run `make lock`"
    pins = makefile_lock_pins()
    assert set(pins) == {"torch", "torchvision"}
    assert {name: str(versions[name]) for name in pins} == pins


def test_the_installed_versions_equal_the_lock():
    wrong = {}
    for name, version in locked().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = (str(version), "missing")
            continue
        if installed.public != version.public:                # torch's +cu130 is a local label
            wrong[name] = (str(version), str(installed))
    assert not wrong, f"locked vs installed (run `make setup`): {wrong}"


def test_environment_yml_installs_the_lock_and_nothing_else():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    (pip_section,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_section == ["-r requirements.lock"]          # every package, at the lock's version and hash
    assert sorted(conda) == ["pip", f"python={sys.version_info.major}.{sys.version_info.minor}"]
    assert env["channels"] == ["conda-forge"]


def test_colab_keeps_its_own_torch():
    for requirement in map(Requirement, PYPROJECT["project"]["dependencies"]):
        if requirement.name in ("torch", "torchvision"):     # lower bounds only
            assert {s.operator for s in requirement.specifier} == {">="}, requirement
    cell = install_cell("https://github.com/ann/inc")
    (command,) = re.findall(r'"pip", "install", "-q",\s*"([^"]+)"\]', cell)
    assert command == "inc-utils[notebooks] @ git+https://github.com/ann/inc"
    assert "lock" not in cell and "torch" not in command


def test_the_package_builds_without_packaging_warnings(tmp_path):
    src = snapshot(tmp_path / "src")
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    scales = {f"inc_utils.params.{p.name}" for p in (ROOT / "params").iterdir() if p.is_dir()}
    assert scales <= listed, f"add to [tool.setuptools] packages: {sorted(scales - listed)}"
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-v", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, check=True)
    log = out.stdout + out.stderr
    assert "adding 'inc_utils/params/smoke/01_intermediate_nc.yaml'" in log     # the backend's output is here
    assert not re.findall(r".*\w+Warning\b.*", log), re.findall(r".*\w+Warning\b.*", log)

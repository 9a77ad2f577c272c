# INC companion. `make reproduce` sets up .venv and executes every chapter; `make test` runs the tests.
SCALE ?= smoke
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
# The exact torch the nbval references and the README's results were made with; `make lock` keeps it.
LOCK_PINS := torch==2.14.1 torchvision==0.29.1
# uv: the machine's, else the one `make setup` puts into .venv/uv (outside site-packages, so
# syncing the environment to the lock leaves it alone).
UV = $(or $(shell uv --version >/dev/null 2>&1 && command -v uv),$(VENV)/uv/bin/uv)

.PHONY: setup lock reproduce references test test-notebooks test-units test-fast lab colab clean

setup: $(STAMP)

# The environment equals requirements.lock (extra packages removed), plus this project editable.
# With uv under a minute on a fresh clone; without it (`make setup UV=false`), pip: minutes.
# Both compile the packages' bytecode at install (pip does so by default): where Python may not
# write it (PYTHONDONTWRITEBYTECODE, read-only installs), every process, each test's and notebook
# kernel's included, would otherwise compile torch's, scipy's and scikit-learn's sources again.
$(STAMP): pyproject.toml $(LOCK)
	@if ! $(UV) --version >/dev/null 2>&1; then \
	  test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install --quiet --disable-pip-version-check --target $(VENV)/uv uv || true; \
	fi
	@if $(UV) --version >/dev/null 2>&1; then \
	  echo "make setup: installing $(LOCK) into $(VENV) with uv"; \
	  (test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)) && \
	  $(UV) pip sync --quiet --compile-bytecode --python $(PY) $(LOCK) && \
	  $(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e . ; \
	else \
	  echo "make setup: uv unavailable, installing $(LOCK) into $(VENV) with pip (slower)"; \
	  $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK) && \
	  $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . ; \
	fi
	@touch $(STAMP)

# Refresh the lock: the newest versions pyproject.toml allows (for Python 3.10 and up, every
# platform), torch kept at LOCK_PINS. Then `make setup`, `make references`, and review both diffs.
lock:
	printf '%s\n' $(LOCK_PINS) | $(UV) pip compile pyproject.toml - --extra dev --universal \
	  --python-version 3.10 --generate-hashes --upgrade --custom-compile-command "make lock" \
	  --quiet -o $(LOCK)

reproduce: $(STAMP)
	$(PY) -m inc_utils reproduce --scale $(SCALE)

references: $(STAMP)
	$(MAKE) reproduce SCALE=smoke
	$(PY) tests/make_references.py

# The references are made on the native CPU code path; the tests run on PyTorch's portable kernels,
# so every run checks that the notebooks' checked outputs hold on another path (tests/notebooks/README.md).
TEST_CPU_PATH ?= default
# Two pytest processes of one torch thread each (tests/conftest.py), one per core: the notebook
# checks (in order, in one runs folder) beside the other tests; each one's report prints when it ends.
test: $(STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-notebooks test-units

test-notebooks test-units: $(STAMP)
	ATEN_CPU_CAPABILITY=$(TEST_CPU_PATH) $(PY) -m pytest $(if $(filter test-notebooks,$@),tests/notebooks,--ignore=tests/notebooks)

# The unit tests without the nbval notebook checks and the slow end-to-end and browser tests.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" --ignore=tests/notebooks

lab: $(STAMP)
	$(PY) -m inc_utils.lab

colab: $(STAMP)
	$(PY) -m inc_utils colab

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

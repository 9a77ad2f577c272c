# INC companion. `make reproduce` sets up .venv and executes every chapter; `make test` runs the tests.
SCALE ?= smoke
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup reproduce references test lab colab clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(PY) -m inc_utils reproduce --scale $(SCALE)

references: $(STAMP)
	$(MAKE) reproduce SCALE=smoke
	$(PY) tests/make_references.py

test: $(STAMP)
	$(PY) -m pytest

lab: $(STAMP)
	$(PY) -m inc_utils.lab

colab: $(STAMP)
	$(PY) -m inc_utils colab

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

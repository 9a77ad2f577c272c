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

# unit tests, then the notebook references (made on this CPU's own code path) on another: PyTorch's
# portable kernels, unless ATEN_CPU_CAPABILITY names one (tests/notebooks/README.md)
test: $(STAMP)
	$(PY) -m pytest --ignore=tests/notebooks
	ATEN_CPU_CAPABILITY=$${ATEN_CPU_CAPABILITY:-default} $(PY) -m pytest tests/notebooks

lab: $(STAMP)
	$(PY) -m inc_utils.lab

colab: $(STAMP)
	$(PY) -m inc_utils colab

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

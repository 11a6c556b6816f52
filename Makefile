# image-awaiter: every command a developer or CI needs. Python 3.11+, pip and npm are enough.
PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint bench soak e2e clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## demo: run `image-awaiter await` end to end against the simulated cluster
demo: install
	$(PY) -m tests.demo

## test: the whole suite (unit, integration against the simulated cluster, chart, image)
test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

## test-fast: unit tests only
test-fast: install
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check image_awaiter tests benchmarks
	$(VENV)/bin/mypy

## e2e: real-cluster tests (kind/k3d/minikube or KUBECONFIG); they skip with a reason elsewhere
e2e: install
	$(PY) -m pytest -q tests/e2e -rs

clean:
	rm -rf $(VENV) .tools build .pytest_cache .mypy_cache .ruff_cache

-include Makefile.chart

# chainlab: every target sets itself up on a fresh machine that has only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-long bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev,plot]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/chainlab testnet up --nodes 4 --foreground --load-tps 5

test: $(STAMP)
	$(PY) -m pytest

test-long: $(STAMP)
	$(PY) -m pytest --long -m long

bench: $(STAMP)
	$(PY) -m pytest benches --benchmark-enable --benchmark-only -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

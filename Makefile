# The README's commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_ID ?= demo

.PHONY: demo test test-fast bench install lab clean-runs help

help:
	@echo "make demo   - install into $(VENV), run notebooks 01-06 on the generated sample set, print the report path"
	@echo "make test   - install into $(VENV), check the import layers (lint-imports) and run the test suite"
	@echo "make test-fast - the edit-test loop: import layers and every test not marked slow (under a minute)"
	@echo "make bench  - time extraction (decode floor, ours, naive), workers and GRU training; writes bench/RESULTS.md"
	@echo "make lab    - open JupyterLab in this environment"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,cluster]"
	$(PY) -m audioreg.features.numba_cache --check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/audioreg run --run-id $(RUN_ID)

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n auto --dist loadfile

test-fast: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n auto --dist loadfile -m "not slow" -q

bench: $(STAMP)
	$(PY) bench/run.py

lab: $(STAMP)
	$(VENV)/bin/jupyter lab

clean-runs:
	rm -rf runs/ reports/*/

# Two jobs a fresh clone needs: `make forecast` (the quick start) and `make test`.
# The virtual environment is created on first use and the package (re)installed only when
# pyproject.toml is newer than the stamp file .venv/.installed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: forecast test lint venv

forecast: $(STAMP)
	$(BIN)/obscale-bayes quickstart

# Test files run in parallel worker processes (one per core, at most 4): the slow tests are
# mostly single-threaded compiles and small fits. A file stays on one worker, so its
# module-scoped fixtures are built once.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

# attnstudy — the two commands a new user needs: `make study` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PRESET ?= quick
WORKERS ?= 2

.PHONY: setup test lint format

# Set up once: a virtual environment with the CPU build of PyTorch pinned (an unpinned
# torch pulls a multi-GB CUDA build), then the project and its dev extras.
$(BIN)/attnstudy: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(BIN)/attnstudy

test: setup
	$(BIN)/python -m pytest -x -q

lint: setup
	$(BIN)/ruff check src analysis tests
	$(BIN)/ruff format --check src analysis tests

# attnstudy — the two commands a new user needs: `make study` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PRESET ?= quick
WORKERS ?= 2

.PHONY: setup test test-fast lint chaos study ui dashboard report bench docs calibration \
	constraints

# Set up once: a virtual environment with the CPU build of PyTorch pinned (an unpinned
# torch pulls a multi-GB CUDA build), then the project and its dev extras at the versions of
# constraints.txt (those the last recorded study ran with; on another Python, pip's choice).
$(BIN)/attnstudy: pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

setup: $(BIN)/attnstudy

# Every test, on TEST_WORKERS processes (pytest-xdist), each test file on one of them so its
# module fixtures are built once: on the 2-core machine (2026-12-06) 5 min 53 s in a set-up
# venv, 8 min 43 s on a clean clone; 13 min 31 s on one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -x -q -n $(TEST_WORKERS) --dist loadfile

# The inner loop (under 2 minutes on the 2-core machine): everything but the tests marked
# slow, browser, postgres or processes (tests/conftest.py); `make test` and CI run them all.
test-fast: setup
	$(BIN)/python -m pytest -x -q -n $(TEST_WORKERS) -m "not slow and not browser and not postgres and not processes"

# The chaos test: workers of one small study SIGKILLed five times at random moments, then the
# same command again; every grid point must end with one result, equal to an uninterrupted run.
chaos: setup
	$(BIN)/python -m pytest -q tests/test_reliability.py -k chaos

lint: setup
	$(BIN)/ruff check src analysis tests
	$(BIN)/ruff format --check src analysis tests

# The report of a study's runs: reports/$(STUDY)/report.html (self-contained, opens offline)
# and report.pdf, also logged to the study's parent MLflow run. STUDY is the study's name.
STUDY ?= $(PRESET)
report: setup
	$(BIN)/attnstudy report --study $(STUDY)

# Run (or resume) study/$(PRESET).yaml with $(WORKERS) worker processes; stores under runs/.
study: setup
	$(BIN)/attnstudy study run study/$(PRESET).yaml --workers $(WORKERS)

# The MLflow UI opened on study $(STUDY)'s runs: prints the page to open,
# http://127.0.0.1:$(UI_PORT)/#/experiments/<id>/runs, then serves the store of $(RUNS_DIR)
# (or $$MLFLOW_TRACKING_URI, as `study run` does; a tracking server's URL is only printed).
# One server process, no background job runner: light enough to run beside a study.
UI_PORT ?= 5000
RUNS_DIR ?= runs
ui: setup
	$(BIN)/attnstudy ui --study $(STUDY) --runs-dir $(RUNS_DIR) --port $(UI_PORT)

# optuna-dashboard over the Optuna store: http://127.0.0.1:$(DASHBOARD_PORT)
DASHBOARD_PORT ?= 8080
dashboard: setup
	$(BIN)/optuna-dashboard sqlite:///$(CURDIR)/runs/optuna.db \
		--host 127.0.0.1 --port $(DASHBOARD_PORT)

# Speed and memory against torch.nn and x-transformers (installed here: a bench-only extra):
# reports/bench/bench.{json,md}, also logged to the MLflow experiment `bench`.
# BENCH_ARGS="--quick" for a smoke run; "--threads 2" to time with both cores.
BENCH_ARGS ?=
bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/attnstudy bench $(BENCH_ARGS)

# constraints.txt from the packages in .venv: run it beside a study whose record you commit.
constraints: setup
	$(BIN)/python -m attnstudy.environment > constraints.txt.new
	mv constraints.txt.new constraints.txt

# docs/claims.md from the claim registry (analysis/claims.py); a test checks they agree.
docs: setup
	$(BIN)/python -m attnstudy.analysis.docs

# docs/calibration.md: steps to competence per task and architecture, from the logged runs
# of the studies named in CALIBRATION (each must have been run into the store); the sections
# of studies not named are kept as they are.
CALIBRATION ?= quick modern standard replicate-kazemnejad replicate-deletang
calibration: setup
	$(BIN)/python -m attnstudy.analysis.calibration $(CALIBRATION)

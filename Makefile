# The README's two set-up commands live here: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-container lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs the runtime extras only; tests and lint need the dev extras too.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[serve,monitoring,ui]"
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.runtime

install: $(VENV)/.installed

demo: $(VENV)/.runtime
	$(BIN)/mlcycle demo

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not pg_outage" $(PYTEST_ARGS)
	# PostgreSQL outages would break tests running beside them: these run alone, last.
	$(BIN)/python -m pytest -m pg_outage $(PYTEST_ARGS)

# Only the Docker image tests (a Docker engine; scripts/docker_env.py prepares it). `make test`
# runs them too.
test-container: install
	$(BIN)/python -m pytest -m container $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/serving.py --quick
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/drift.py --rows 1000000
	$(BIN)/python benchmarks/batch.py

clean:
	rm -rf $(VENV) mlflow.db mlflow.db*.lock mlruns mlartifacts inference-log demo-output \
		monitoring-reports

# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PIP    := $(BIN)/python -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup lint typecheck pytest wheel-check test demo bench emulator clean

# Builds .venv from nothing when missing; reuses it (and skips pip) when pyproject/constraints did not change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

wheel-check: setup
	$(BIN)/python scripts/check_wheel.py

test: lint typecheck pytest wheel-check

# `make demo AGENT=agent_booking` shows a failing gate (the report still gets the counts).
AGENT ?= agent_support
demo: setup
	$(BIN)/python scripts/demo.py $(AGENT)

# The bench extra (dbt Cloud's provider as the baseline, trustme for the fake server's TLS) is
# installed only here: `make test` never needs it.
$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

# ~15 minutes (the real triggerer about half of it). Iterate on the triggerer comparison alone with:
#   .venv/bin/python benchmarks/side_by_side.py --n 1000
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

# Start the bundled emulator by hand: `make emulator API_KEY=my-key`
API_KEY ?= local-dev-key
emulator: setup
	$(BIN)/python -m airflow_provider_retell.emulator --host 127.0.0.1 --port 8765 --api-key $(API_KEY)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

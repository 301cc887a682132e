# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
PIP    := $(BIN)/python -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Playwright drives the system Chromium (tests/browser): never download a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: setup lint typecheck pytest wheel-check docs test demo bench emulator airflow-ui airflow-ui-stop screenshots clean

# Builds .venv from nothing when missing; reuses it (and skips pip) when pyproject/constraints did not change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e ".[dev,docs,browser]"
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

# The docs site (docs/_build/html/index.html): every warning is an error. Its Python samples run
# against the emulator in pytest (tests/docs/test_samples.py).
docs: setup
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint typecheck docs pytest wheel-check

# `make demo AGENT=agent_booking` shows a failing gate (the report still gets the counts).
AGENT ?= agent_support
demo: setup
	$(BIN)/python scripts/demo.py $(AGENT)

# The bench extra (dbt Cloud's provider as the baseline, trustme for the fake server's TLS) is
# installed only here: `make test` never needs it.
$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[dev,docs,browser,bench]"
	@touch $(BENCH_STAMP)

# ~15 minutes (the real triggerer about half of it). Iterate on the triggerer comparison alone with:
#   .venv/bin/python benchmarks/side_by_side.py --n 1000
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

# Start the bundled emulator by hand: `make emulator API_KEY=my-key`
API_KEY ?= local-dev-key
emulator: setup
	$(BIN)/python -m airflow_provider_retell.emulator --host 127.0.0.1 --port 8765 --api-key $(API_KEY)

# A local Airflow (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1 with the example DAGs
# and retell_default pointing at the bundled emulator; prints the URL and the login. State: .airflow-ui/
airflow-ui: setup
	$(BIN)/python scripts/airflow_ui.py start

airflow-ui-stop:
	@test -x $(BIN)/python || { echo "No .venv: nothing was started"; exit 0; }
	$(BIN)/python scripts/airflow_ui.py stop

# Re-takes the browser tests' screenshots and copies the two the docs show into docs/img/
# (connection-form.png, ui-triggered-run.png); CI=true: a missing Chromium fails instead of skipping.
# Tests never write docs/ otherwise, so CI leaves the tree clean.
screenshots: setup
	CI=true RETELL_UPDATE_DOCS_SCREENSHOTS=1 $(BIN)/python -m pytest -q -m browser tests/browser

clean:
	rm -rf $(VENV) build dist docs/_build *.egg-info .pytest_cache .mypy_cache .ruff_cache test-output

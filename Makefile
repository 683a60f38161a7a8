# `make demo` and `make test` work on a fresh machine: they create .venv and install from the lock file.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup setup-lnn demo test lint typecheck unit bench lock clean web-assets

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The dashboard's browser libraries: npm installs the versions package-lock.json pins, then the files the
# pages load are copied into the package (never a CDN). Re-runs when package.json or the lock changes.
VENDOR := src/aurora/web/static/vendor
VENDOR_STAMP := $(VENDOR)/.stamp

$(VENDOR_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp node_modules/echarts/dist/echarts.min.js $(VENDOR)/
	for p in htmx.org uplot echarts; do cp node_modules/$$p/LICENSE $(VENDOR)/LICENSE.$$p; done
	touch $(VENDOR_STAMP)

web-assets: $(VENDOR_STAMP)

# The optional `lnn` extra (CfC liquid networks: ncps on torch 2.13.0, CPU build; about 15 s and 750 MB),
# kept out of the lock as the extra is optional; `make test` installs it so that the CfC tests run for real.
LNN_STAMP := $(VENV)/.lnn-stamp

$(LNN_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0 ncps==1.0.1
	touch $(LNN_STAMP)

setup-lnn: $(LNN_STAMP)

setup: $(STAMP) $(VENDOR_STAMP)

demo: setup
	$(BIN)/aurora demo

test: setup setup-lnn lint typecheck
	$(BIN)/pytest -q -ra

lint: setup
	$(BIN)/ruff check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q tests/unit

bench: setup
	$(BIN)/python benchmarks/run_all.py

# Re-resolve every dependency in one step (needs uv: `pip install uv`).
lock:
	uv pip compile pyproject.toml --extra dev --extra bench --extra k8s --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) $(VENDOR) node_modules .pytest_cache .mypy_cache .ruff_cache

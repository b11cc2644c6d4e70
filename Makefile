# pmon3 developer verbs. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WHEEL_DIR ?= dist

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

dev: $(PY) ## build the extension and install pmon3 with its test tools into .venv
	$(PY) -m pip install -q -e '.[test]'

build: ## build the release wheel into $(WHEEL_DIR)
	$(PYTHON) -m maturin build --release -o $(WHEEL_DIR)

test: dev ## the whole suite: Rust unit tests, then the Python suites against a real pmond
	cargo test --no-default-features --quiet
	$(PY) -m pytest -q

test-python: dev ## only the Python suites
	$(PY) -m pytest -q

lint: dev ## rustfmt, clippy, ruff, and the .pyi stub against the built module
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --no-default-features -- -D warnings
	$(VENV)/bin/ruff check python tests
	$(VENV)/bin/ruff format --check python tests
	$(PY) -m pytest -q tests/unit/test_native_stub.py

fmt: ## format Rust and Python
	cargo fmt --all
	ruff format python tests

clean: ## remove build products
	rm -rf target $(VENV) dist build .pytest_cache

.PHONY: help dev build test test-python lint fmt clean

# pmon3 developer verbs. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WHEEL_DIR ?= dist
# Install prefix of `make install-systemd`; DESTDIR stages it elsewhere (then systemctl is skipped).
DESTDIR ?=
# The pmond that the unit runs; default: `command -v pmond` at install time.
PMOND ?=
# The interpreters `make wheel-smoke` installs the wheel into (X.Y: pythonX.Y on PATH, or pyenv's).
WHEEL_PYTHONS ?= $(PYTHON) 3.9 3.13
# Leave empty for this machine's architecture, e.g. aarch64-unknown-linux-gnu to cross-build with zig.
TARGET ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

dev: $(PY) ## build the extension and install pmon3 with its test tools into .venv
	$(PY) -m pip install -q -e '.[test]'

build: ## a release wheel for this machine only (its own glibc tag); `make wheel` for the portable one
	$(PYTHON) -m maturin build --release -o $(WHEEL_DIR)

wheel: $(VENV)/bin/maturin ## one abi3 manylinux2014 (glibc >= 2.17) wheel into $(WHEEL_DIR), linked by zig
	PATH="$(abspath $(VENV))/bin:$$PATH" maturin build --release --zig --compatibility manylinux2014 \
		$(if $(TARGET),--target $(TARGET)) -o $(WHEEL_DIR)

sdist: $(VENV)/bin/maturin ## the source distribution into $(WHEEL_DIR)
	$(VENV)/bin/maturin sdist -o $(WHEEL_DIR)

wheel-smoke: wheel ## build the wheel; in a fresh venv without cargo per Python of WHEEL_PYTHONS, run pmon3 and pmond
	PYTHONS="$(WHEEL_PYTHONS)" WHEEL_DIR=$(WHEEL_DIR) scripts/wheel-smoke.sh

$(VENV)/bin/maturin: $(PY)
	$(PY) -m pip install -q 'maturin>=1.7,<2' ziglang

completions: dev ## regenerate completions/: the scripts, what they complete (cli-surface.txt), the click used
	$(PY) scripts/completions.py completions

install-systemd: ## install unit, default config (never overwritten), logrotate, completions; enable + start
	PMOND="$(PMOND)" DESTDIR="$(DESTDIR)" scripts/systemd.sh install

uninstall-systemd: ## stop, disable and remove the unit, logrotate file and completions; keeps config and data
	DESTDIR="$(DESTDIR)" scripts/systemd.sh uninstall

systemd_install: install-systemd ## alias of install-systemd (pmon3's name)

systemd_uninstall: uninstall-systemd ## alias of uninstall-systemd (pmon3's name)

test: dev ## the whole suite: lint and types, Rust unit tests, the wheel smoke test, the Python suites against a real pmond
	$(MAKE) --no-print-directory lint typecheck
	cargo test --no-default-features --quiet
	$(MAKE) --no-print-directory wheel-smoke
	$(PY) -m pytest -q

test-python: dev ## only the Python suites
	$(PY) -m pytest -q

lint: dev ## rustfmt, clippy, ruff, and the .pyi stub against the built module
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --no-default-features -- -D warnings
	$(VENV)/bin/ruff check python tests benches docs/examples
	$(VENV)/bin/ruff format --check python tests benches docs/examples
	$(PY) -m pytest -q tests/unit/test_native_stub.py

typecheck: dev ## mypy --strict on python/ (the .pyi stub is checked by stubtest in lint)
	$(PY) -m mypy --strict python/pmon3

fmt: ## format Rust and Python
	cargo fmt --all
	ruff format python tests benches docs/examples

clean: ## remove build products
	rm -rf target $(VENV) dist build .pytest_cache

.PHONY: help dev build wheel sdist wheel-smoke completions install-systemd uninstall-systemd systemd_install \
	systemd_uninstall test test-python lint typecheck fmt clean

bench: ## benchmarks vs supervisord (benches/.venv-peer), a C reference and PM2 (reloads): table + benches/results/*.json
	$(PY) benches/run.py

bench-quick: ## the same benchmarks, shorter (about 4 minutes)
	$(PY) benches/run.py --quick

bench-scale: ## pmond at N = 1 ... 10,000 processes, storms, a crash loop: benches/results/scale.md and scale.png
	$(PY) benches/scale.py --save

.PHONY: bench bench-quick bench-scale

# protege: two commands on a fresh machine.
#   make demo   set up .venv and run the main job (collect → BC → evaluate → report)
#   make test   set up .venv and run the test suite
#   make docs   build the documentation (guides, API and CLI reference) into site/, strict
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup demo test test-slow test-display test-all lint docs bench clean system-deps

setup: $(STAMP)

# torch first: `pip install torch==2.13.0` takes the machine's local CPU build; any other torch
# requirement would pull a multi-GB CUDA build. pyproject accepts 2.13.0, so the package adds none.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

# Debian packages the display tests need (a real X server and a key-press driver).
system-deps:
	@if ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xdotool >/dev/null; \
		else echo "Xvfb/xdotool missing and not root: display tests will be skipped"; fi; \
	fi
	@if ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 util-linux >/dev/null; \
		else echo "ip/unshare missing and not root: the torchrun test will be skipped"; fi; \
	fi

demo: setup
	$(VENV)/bin/protege demo

test: setup system-deps
	$(PY) -m pytest -q -m "not slow"

test-slow: setup system-deps
	$(PY) -m pytest -q -m slow

test-all: setup system-deps
	$(PY) -m pytest -q -m "slow or not slow"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(VENV)/bin/ruff format --check src tests benchmarks docs
	$(VENV)/bin/mypy

# Offline and strict (mkdocs.yml): any warning, broken link or cross-reference fails it.
docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .bench reports site

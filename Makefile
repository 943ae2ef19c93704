# One command per verb. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODELS_DIR ?= models
# The shared real datasets, when this checkout sits beside them; otherwise the code falls back to
# the public download (export only; tests never download).
DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export DATA_DIR

GRPC_PORT ?= 8500
REST_PORT ?= 8501
GATEWAY_PORT ?= 8000

.PHONY: help install run export models-if-absent test test-unit check lint browser oip-clients

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# pip's and TensorFlow's output goes to .run/*.log; the terminal gets one line per step (and the log's tail
# when a step fails).
QUIET = mkdir -p .run; log=.run/$(1).log; echo "== $(2) (log: $$log)"; \
	{ $(3); } > $$log 2>&1 || { tail -n 40 $$log; echo "== $(2) FAILED: see $$log"; exit 1; }

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(call QUIET,install,installing the stack and its dev tools into $(VENV),\
	  $(PY) -m pip install --upgrade pip && $(PY) -m pip install -e '.[dev]')
	@touch $@

install: $(VENV)/.installed  ## create .venv and install the stack with its dev tools

# NVIDIA's tritonclient and the KServe SDK (pyproject's oip-clients extra) in their own venv: both pin
# protobuf < 7 (the stack runs 7), and they cannot share one process (both register `inference.*` protos).
OIP_VENV ?= .venv-oip
$(OIP_VENV)/.installed: pyproject.toml
	@test -x $(OIP_VENV)/bin/python || $(PYTHON) -m venv $(OIP_VENV)
	$(OIP_VENV)/bin/python -m pip install --upgrade --quiet pip
	$(OIP_VENV)/bin/python -m pip install --quiet -e '.[oip-clients]'
	@touch $@

oip-clients: $(OIP_VENV)/.installed  ## the OIP clients venv (.venv-oip) the OIP tests drive the modelserver with

export: install  ## train and publish all three models (next free version of each)
	$(PY) -m export all --models-dir $(MODELS_DIR)

models-if-absent: install
	@for m in fashion text housing; do \
	  if ! ls -d $(MODELS_DIR)/$$m/[0-9]* >/dev/null 2>&1; then \
	    $(call QUIET,export-$$m,no published version of '$$m' yet: exporting it,\
	      TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m export $$m --models-dir $(MODELS_DIR)); \
	  fi; \
	done

run: models-if-absent  ## install, export models if absent, start modelserver + gateway (Ctrl-C stops)
	@scripts/run-stack.sh

test: install browser bench-loadgen oip-clients  ## the test suite, with coverage (CI runs `make check` then this)
	$(PY) -m pytest -q --cov --cov-report=term:skip-covered

test-unit: install  ## the fast tier for the edit-test loop: no model training, no server processes
	$(PY) -m pytest -q -m "not e2e and not trains and not slow"

# The console's browser tests drive Debian's Chromium; install it when missing (CI runs as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "== installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || exit 1; \
	  else echo "chromium is missing: install Debian's 'chromium' package for the browser tests"; exit 1; fi; }

# The console's type checker, pinned in package-lock.json, installed from the npm registry on first use.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

check: install node_modules/.installed  ## ruff, ruff format --check, mypy (strict), layers, dependencies, tsc
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/deptry .
	node_modules/.bin/tsc -p tsconfig.json --noEmit

lint: check  ## the same as make check

# Heavier verbs live beside the code they drive.
-include docker/compose.mk
-include bench/bench.mk
-include reliability/reliability.mk

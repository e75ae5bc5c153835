# Fairway: `make demo` runs the lifecycle on embedded defaults, `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
UV_VERSION := 0.13.9
USECASE ?= credit_risk
PORT ?= 3000
EXECUTOR ?= local

export FAIRWAY_HOME ?= $(CURDIR)/.fairway
export FAIRWAY_USECASE := $(USECASE)
export AIRFLOW_HOME ?= $(FAIRWAY_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export UV_COMPILE_BYTECODE := 1

.PHONY: help setup lock lint format typecheck test stack-deps demo up down serve bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || (echo "==> creating $(VENV) with $(PYTHON)" && $(PYTHON) -m venv $(VENV))
	@test -x $(BIN)/uv || (echo "==> installing uv $(UV_VERSION)" && \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION))
	@echo "==> installing the $$(grep -c '==' requirements.txt) pinned packages of requirements.txt (a few minutes the first time)"
	@$(BIN)/uv pip install --python $(BIN)/python -r requirements.txt 2>&1 | grep -v '^ [-+~] ' ; exit $${PIPESTATUS[0]}
	@$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	@echo "==> $(VENV) is ready"
	@touch $@

setup: $(VENV)/.installed  ## create .venv with the pinned packages (idempotent)

lock: $(VENV)/.installed  ## recompile requirements.txt from requirements.in
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --quiet -o requirements.txt

lint: setup  ## ruff, with Airflow's AIR rules
	$(BIN)/ruff check .

format: setup  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

typecheck: setup  ## mypy over include/fairway
	$(BIN)/mypy

test: lint typecheck stack-deps  ## lint, type check and the whole test suite
	$(BIN)/python -m pytest

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends

stack-deps:  ## Debian packages the stack tests start (redis-server, chromium), installed when missing
	@for pair in redis-server:redis-server chromium:chromium; do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null || echo "==> installing $$pkg (Debian package)"; \
	  command -v $$bin >/dev/null || $(APT_INSTALL) $$pkg >/dev/null 2>&1 \
	  || ($(SUDO) apt-get update -qq >/dev/null 2>&1 && $(APT_INSTALL) $$pkg >/dev/null 2>&1) \
	  || echo "$$pkg could not be installed: the tests that need it will be skipped"; done

demo: setup  ## generate data, apply the Feast repo and run the DAGs month by month
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/python include/demo.py --usecase $(USECASE)

up: setup  ## stack without Docker: EXECUTOR=local (Airflow standalone, SQLite) or celery (PostgreSQL, Redis, 2 workers)
	$(BIN)/python include/local_stack.py up --executor $(EXECUTOR)

down:  ## stop every process `make up` started (either executor)
	$(BIN)/python include/local_stack.py down

serve: setup  ## bentoml serve the packaged champion on PORT (default 3000)
	$(BIN)/fairway --usecase $(USECASE) serve --port $(PORT)

bench: setup  ## benchmarks: ratios against their baselines, results under bench/results/
	$(BIN)/python bench/bench_training_frame.py
	$(BIN)/python bench/bench_batch_inference.py
	$(BIN)/python bench/bench_drift.py
	$(BIN)/python bench/bench_serving.py
	$(BIN)/python bench/bench_request_path.py
	$(BIN)/python bench/bench_reasons.py
	$(BIN)/python bench/bench_lifecycle.py
	$(BIN)/python bench/bench_onboarding.py
	$(BIN)/python bench/bench_mitigation.py
	$(BIN)/python bench/bench_evidence.py
	$(BIN)/python bench/bench_scale.py

clean:  ## delete everything Fairway made (FAIRWAY_HOME); keeps .venv
	rm -rf $(FAIRWAY_HOME)

# lianhu: `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install run test lint typecheck unit bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv if missing and install lianhu with its dev tools

run: install ## run the engine on the embedded default (SQLite and a local NATS under var/) at $(HOST):$(PORT)
	$(BIN)/lianhu serve --host $(HOST) --port $(PORT)

lint: install ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy engine projections routing_rules api bench tests

unit: install ## the test suite alone (no lint)
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint unit ## lint, then the whole suite (starts its own PostgreSQL and NATS)

bench: install ## run the benchmarks; writes bench/RESULTS.md
	$(BIN)/python -m bench

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

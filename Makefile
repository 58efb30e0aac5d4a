# segsync: the Makefile is the contract. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create the project's virtualenv with pinned dependencies

run: $(STAMP) ## Run the demo on the embedded default (DuckDB, moto, local capture endpoint); ARGS="-v" etc.
	$(BIN)/segsync demo $(ARGS)

test: $(STAMP) ## Run the whole test suite (unit, integration, e2e)
	$(BIN)/pytest

bench: $(STAMP) ## Benchmark sender (vs the official library), planner, incremental, end to end, paced cost (~10 min)
	$(BIN)/python -m bench

faults: $(STAMP) ## Run the fault-injection suite and print its figures (sent, received, duplicates, lost)
	SEGSYNC_FAULTS_TABLE=$(VENV)/faults.md $(BIN)/pytest -q tests/e2e/test_faults.py
	@cat $(VENV)/faults.md

schema: $(STAMP) ## Regenerate schema/segsync.schema.json (the project file's JSON Schema) from the models
	$(BIN)/segsync schema --out schema/segsync.schema.json

lint: $(STAMP) ## Lint and format-check the code (fails on findings)
	$(BIN)/ruff check shared functions tests bench
	$(BIN)/ruff format --check shared functions tests bench

# The Lambda layer's lock: the whole dependency tree of layers/deps/requirements.in, resolved for the
# functions' runtime (Python 3.12 on arm64, whatever this machine is), each package with the hashes of
# all its published files, so `sam build` (arm64 wheels) and the runtime test (x86_64) check the same lock.
LOCK_IN := layers/deps/requirements.in
LOCK := layers/deps/requirements.txt

lock: $(STAMP) ## Re-resolve the Lambda layer's lock (layers/deps/requirements.txt, hashed) from requirements.in
	$(BIN)/uv pip compile $(LOCK_IN) --quiet --generate-hashes --python-version 3.12 \
		--python-platform aarch64-manylinux2014 --custom-compile-command "make lock" --output-file $(LOCK)

pr: lint test validate ## Every check a change must pass before it lands

.PHONY: help venv run test bench schema lint lock pr

include make/aws.mk
include make/dbt.mk

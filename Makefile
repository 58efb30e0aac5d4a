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

run: $(STAMP) ## Run the demo on the embedded default (DuckDB, moto, local capture endpoint)
	$(BIN)/segsync demo

test: $(STAMP) ## Run the whole test suite (unit, integration, e2e)
	$(BIN)/pytest

bench: $(STAMP) ## Benchmark sender (vs the official library), planner, incremental, end to end, cost (~5 min)
	$(BIN)/python -m bench

faults: $(STAMP) ## Run the fault-injection suite and print its figures (sent, received, duplicates, lost)
	SEGSYNC_FAULTS_TABLE=$(VENV)/faults.md $(BIN)/pytest -q tests/e2e/test_faults.py
	@cat $(VENV)/faults.md

schema: $(STAMP) ## Regenerate schema/segsync.schema.json (the project file's JSON Schema) from the models
	$(BIN)/segsync schema --out schema/segsync.schema.json

lint: $(STAMP) ## Lint and format-check the code (fails on findings)
	$(BIN)/ruff check shared functions tests bench
	$(BIN)/ruff format --check shared functions tests bench

pr: lint test validate ## Every check a change must pass before it lands

.PHONY: help venv run test bench schema lint pr

include make/aws.mk
include make/dbt.mk

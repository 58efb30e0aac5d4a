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

# The BigQuery tests run against bqemulator (BigQuery's REST API on DuckDB), in a virtualenv of its own:
# its duckdb and sqlglot pins are not fakesnow's. tests/emulators/README.md says what it covers.
BQ_VENV := .venv-bq
BQ_STAMP := $(BQ_VENV)/.installed

$(BQ_STAMP): tests/emulators/requirements-bigquery.txt
	$(PYTHON) -m venv $(BQ_VENV)
	$(BQ_VENV)/bin/pip install --quiet --upgrade pip
	$(BQ_VENV)/bin/pip install --quiet -r tests/emulators/requirements-bigquery.txt
	touch $(BQ_STAMP)

# The Databricks dialect's SQL runs on a local Spark (pyspark 4, Java 17) behind a loopback copy of the SQL
# Statement Execution API, in a virtualenv of its own (pyspark alone is ~500 MB: not in the dev venv).
SPARK_VENV := .venv-spark
SPARK_STAMP := $(SPARK_VENV)/.installed

$(SPARK_STAMP): tests/emulators/requirements-spark.txt
	@command -v java >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
		else \
			echo "the Databricks tests run Spark, which needs Java 17: sudo apt-get install openjdk-17-jre-headless" >&2; \
			exit 1; \
		fi; }
	$(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/pip install --quiet --upgrade pip
	$(SPARK_VENV)/bin/pip install --quiet -r tests/emulators/requirements-spark.txt
	touch $(SPARK_STAMP)

test: $(STAMP) postgres-server $(BQ_STAMP) $(SPARK_STAMP) ## Run the whole test suite (unit, integration, e2e)
	$(BIN)/pytest

# The PostgreSQL tests (and Redshift's SQL) run against a real server the fixtures start from Debian's
# binaries, as the postgres user in a temporary directory; a fresh machine gets the binaries here.
postgres-server: ## Install PostgreSQL's server binaries if missing (Debian's postgresql package)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else \
			echo "the tests need PostgreSQL's server binaries: sudo apt-get install postgresql" >&2; exit 1; \
		fi; }

bench: $(STAMP) postgres-server ## Benchmark sender (vs the official library), planner, warehouses, incremental, end to end, paced cost (~10 min)
	$(BIN)/python -m bench

faults: $(STAMP) ## Run the fault-injection suite; write its figures into docs/faults.md and print them
	SEGSYNC_FAULTS_TABLE=docs/faults.md $(BIN)/pytest -q tests/e2e/test_faults.py
	@sed -n '/faults-table:start/,/faults-table:end/p' docs/faults.md

schema: $(STAMP) ## Regenerate schema/segsync.schema.json (the project file's JSON Schema) from the models
	$(BIN)/segsync schema --out schema/segsync.schema.json

lint: $(STAMP) ## Lint and format-check the code (fails on findings)
	$(BIN)/ruff check shared functions tests bench docs/hooks
	$(BIN)/ruff format --check shared functions tests bench docs/hooks

# The Lambda layer's lock: the whole dependency tree of layers/deps/requirements.in, resolved for the
# functions' runtime (Python 3.12 on arm64, whatever this machine is), each package with the hashes of
# all its published files, so `sam build` (arm64 wheels) and the runtime test (x86_64) check the same lock.
# manylinux_2_28: the runtime's Amazon Linux 2023 has glibc 2.34, and psycopg-binary ships no older arm64 wheel.
LOCK_IN := layers/deps/requirements.in
LOCK := layers/deps/requirements.txt

lock: $(STAMP) ## Re-resolve the Lambda layer's lock (layers/deps/requirements.txt, hashed) from requirements.in
	$(BIN)/uv pip compile $(LOCK_IN) --quiet --generate-hashes --python-version 3.12 \
		--python-platform aarch64-manylinux_2_28 --custom-compile-command "make lock" --output-file $(LOCK)

pr: lint test validate docs ## Every check a change must pass before it lands

.PHONY: help venv run test postgres-server bench schema lint lock pr

include make/aws.mk
include make/dbt.mk
include make/docs.mk

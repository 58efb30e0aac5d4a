# dbt fixture: the tests resolve dbt models through a manifest that real dbt-core wrote.
# Included by the top-level Makefile, which defines PYTHON.
#
# dbt lives in its own virtualenv and never in the project's (nor in the Lambda layer): the tests read
# the committed manifest and need no dbt. Run `make dbt-fixture` after changing tests/fixtures/dbt_project.

DBT_VENV := .venv-dbt
DBT_STAMP := $(DBT_VENV)/.installed
# dbt-core 1.12 pulls a parser wheel from outside the package registry; 1.10 installs everywhere.
DBT_PINS := dbt-core==1.10.23 dbt-duckdb==1.10.1
DBT_PROJECT := tests/fixtures/dbt_project
DBT_WORK := $(DBT_VENV)/work
DBT_FIXTURES := tests/fixtures

$(DBT_STAMP): make/dbt.mk
	$(PYTHON) -m venv $(DBT_VENV)
	$(DBT_VENV)/bin/pip install --quiet --upgrade pip
	$(DBT_VENV)/bin/pip install --quiet $(DBT_PINS)
	touch $(DBT_STAMP)

dbt-fixture: $(DBT_STAMP) ## Rebuild the dbt manifest + run results fixtures with dbt-core on DuckDB (own venv, .venv-dbt)
	rm -rf $(DBT_WORK) && mkdir -p $(DBT_WORK)
	cd $(DBT_PROJECT) && DBT_SEND_ANONYMOUS_USAGE_STATS=false \
		SEGSYNC_DBT_DUCKDB=$(abspath $(DBT_WORK))/warehouse.duckdb \
		$(abspath $(DBT_VENV))/bin/dbt run --profiles-dir . \
		--target-path $(abspath $(DBT_WORK))/target --log-path $(abspath $(DBT_WORK))/logs
	cp $(DBT_WORK)/target/manifest.json $(DBT_FIXTURES)/dbt_manifest.json
	cp $(DBT_WORK)/target/run_results.json $(DBT_FIXTURES)/dbt_run_results.json

.PHONY: dbt-fixture

"""Starts bqemulator (BigQuery's REST API on DuckDB, translated by sqlglot) for the tests, in its own virtualenv.

Run as ``.venv-bq/bin/python tests/emulators/bigquery.py start --rest-port N ...``. bqemulator loads
DuckDB's spatial extension at start for GEOGRAPHY, which it downloads from DuckDB's own site: that is
out of reach here, and segsync uses no GEOGRAPHY, so the load is skipped. Nothing else is changed.
"""

import sys

from bqemulator.cli import main
from bqemulator.storage import engine

engine.DuckDBEngine._load_spatial = lambda self: None

if __name__ == "__main__":
    sys.exit(main())

"""The Databricks adapter against a loopback copy of the SQL Statement Execution API on a local Spark.

See tests/emulators/databricks.py; docs/warehouses.md says what only a real workspace proves.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from segsync.errors import SecretError, WarehouseError
from segsync.warehouse import connect
from segsync.warehouse.databricks import DatabricksWarehouse


def test_a_model_streams_chunk_by_chunk_through_presigned_links(databricks_connection):
    # Given a model of 250 rows (the API cuts results into chunks of 100)
    sql = (
        "SELECT id AS order_id, CAST(id AS DECIMAL(12, 2)) / 4 AS total, "
        "TIMESTAMP '2024-01-01 00:00:00Z' + make_interval(0, 0, 0, CAST(id AS INT)) AS placed_at, "
        "named_struct('n', id) AS detail FROM range(1, 251) ORDER BY id"
    )

    # When it is streamed 120 rows at a time
    with DatabricksWarehouse(databricks_connection) as warehouse:
        batches = list(warehouse.stream(sql, 120))

    # Then every chunk arrived (each from its link, which refuses a token), re-cut and typed
    assert [len(b.rows) for b in batches] == [120, 120, 10]
    assert batches[0].columns == ["order_id", "total", "placed_at", "detail"]
    order_id, total, placed_at, detail = batches[0].rows[1]
    assert (order_id, total, detail) == (2, Decimal("0.500000"), {"n": 2})
    assert placed_at == dt.datetime(2024, 1, 3, tzinfo=dt.UTC)


def test_the_bookkeeping_schema_and_history_tables_are_created(databricks_connection):
    # Given segsync's bookkeeping statements, When the schema is ensured and a run's history written
    from segsync.state import WarehouseState

    with DatabricksWarehouse(databricks_connection) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC_DDL")
        state.ensure()
        warehouse.insert_rows(
            state.history_table,
            ["SYNC", "RUN_ID", "STATUS", "FULL_RESYNC", "SENT"],
            [("s", "r1", "committed", True, 7)],
        )
        runs = state.history("s")

    # Then the tables exist in Spark and the bound values read back
    assert [(r["run_id"], r["status"], r["full_resync"], r["sent"]) for r in runs] == [("r1", "committed", True, 7)]


def test_a_wrong_token_names_the_workspace_and_the_answer(databricks_connection, monkeypatch):
    # Given a token the workspace refuses, When a statement runs
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_DATABRICKS_CREDENTIALS", json.dumps({"token": "dapi-wrong"}))
    with connect(databricks_connection) as warehouse, pytest.raises(WarehouseError) as raised:
        warehouse.query("SELECT 1")

    # Then one line names the workspace and warehouse, with the API's answer, and no token
    message = str(raised.value)
    assert message.startswith(f"Databricks {databricks_connection.server_hostname} (SQL warehouse abc123def456): ")
    assert "HTTP 403 PERMISSION_DENIED: Invalid access token." in message and "dapi-wrong" not in message


def test_a_wrong_http_path_names_the_warehouse(databricks_connection):
    # Given an HTTP path of a warehouse that does not exist
    missing = databricks_connection.model_copy(update={"http_path": "/sql/1.0/warehouses/nope"})

    # When a statement runs, Then the error says which warehouse
    with connect(missing) as warehouse, pytest.raises(WarehouseError, match=r"SQL warehouse nope.*RESOURCE_DOES_NOT"):
        warehouse.query("SELECT 1")


def test_a_failing_statement_quotes_spark(databricks_connection):
    # Given a model reading a table that does not exist, When it is streamed
    with DatabricksWarehouse(databricks_connection) as warehouse, pytest.raises(WarehouseError) as raised:
        list(warehouse.stream("SELECT * FROM no_such_table", 10))

    # Then the error carries the engine's error class and the table
    assert "TABLE_OR_VIEW_NOT_FOUND" in str(raised.value) and "no_such_table" in str(raised.value)


def test_a_secret_without_a_token_is_a_secret_error(databricks_connection, monkeypatch):
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_DATABRICKS_CREDENTIALS", json.dumps({"user": "segsync"}))
    with pytest.raises(SecretError, match="Databricks token: the JSON secret has no 'token'"):
        connect(databricks_connection)

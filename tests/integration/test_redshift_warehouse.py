"""The Redshift adapter over the Data API's protocol (loopback), its statements run by the real PostgreSQL server.

See tests/redshift_data_api.py for what the endpoint reproduces of the Data API, and the README for what
only a real cluster proves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from segsync.config import RedshiftConnection
from segsync.errors import WarehouseError
from segsync.state import WarehouseState
from segsync.warehouse import redshift
from segsync.warehouse.redshift import RedshiftWarehouse

from ..redshift_data_api import DataApi


@pytest.fixture
def api(postgres_server, postgres_connection, monkeypatch) -> Iterator[DataApi]:
    monkeypatch.setattr(redshift, "FIRST_POLL_S", 0.001)
    with psycopg.connect(postgres_server.admin_dsn(postgres_connection.database), autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE orders AS SELECT i AS order_id, (i * 1.25)::NUMERIC(12, 2) AS total, "
            "TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 day' AS placed_at, i % 2 = 0 AS paid "
            "FROM generate_series(1, 25) AS i; GRANT SELECT ON orders TO segsync"
        )
    with DataApi(postgres_server, page_rows=10) as endpoint:
        yield endpoint


def _connection(api: DataApi, database: str, **changes) -> RedshiftConnection:
    return RedshiftConnection.model_validate(
        {"type": "redshift", "cluster_identifier": "analytics", "database": database, "db_user": "segsync",
         "region": "us-east-1", "endpoint_url": api.url, **changes}
    )  # fmt: skip


def test_a_model_streams_page_by_page_with_typed_values(api, postgres_connection):
    # Given 25 orders and a Data API that pages its results 10 records at a time
    with RedshiftWarehouse(_connection(api, postgres_connection.database)) as warehouse:
        # When the model is streamed in batches of 8
        batches = list(warehouse.stream("SELECT * FROM orders ORDER BY order_id", 8))

    # Then every page was fetched with its NextToken, rows re-cut to the batch size, values typed
    assert api.calls.count("GetStatementResult") == 3
    assert [len(b.rows) for b in batches] == [8, 8, 8, 1]
    assert batches[0].columns == ["order_id", "total", "placed_at", "paid"]
    assert batches[0].rows[1] == (2, Decimal("2.50"), dt.datetime(2024, 1, 3, tzinfo=dt.UTC), True)


def test_statements_that_belong_together_run_as_one_batch(api, postgres_connection):
    # Given the bookkeeping schema, When a diff creates its run table (a DROP, then a CREATE)
    with RedshiftWarehouse(_connection(api, postgres_connection.database)) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        state.ensure()
        api.calls.clear()
        warehouse.execute_all(warehouse.dialect.create_table_as("SEGSYNC.T", "SELECT 1 AS x"))

    # Then both went in one BatchExecuteStatement: one transaction, as the Data API runs a batch
    assert api.calls[0] == "BatchExecuteStatement" and "ExecuteStatement" not in api.calls


def test_a_failing_statement_quotes_redshift_in_one_line(api, postgres_connection):
    # Given a model reading a table that does not exist, When it is streamed
    with (
        RedshiftWarehouse(_connection(api, postgres_connection.database)) as warehouse,
        pytest.raises(WarehouseError) as raised,
    ):
        list(warehouse.stream("SELECT * FROM no_such_table", 10))

    # Then the error names the cluster and database, and quotes the statement's error
    assert str(raised.value) == (
        f'Redshift analytics/{postgres_connection.database}: ERROR: relation "no_such_table" does not exist'
    )


def test_an_unknown_cluster_names_the_connection_and_aws_answer(api, postgres_connection):
    # Given a cluster identifier that does not exist, When a statement runs
    connection = _connection(api, postgres_connection.database, cluster_identifier="nope")
    with RedshiftWarehouse(connection) as warehouse, pytest.raises(WarehouseError) as raised:
        warehouse.query("SELECT 1")

    # Then one line names it, with the Data API's error code and message
    assert str(raised.value) == (
        f"Redshift nope/{postgres_connection.database}: ValidationException: "
        "Redshift endpoint doesn't exist in this region."
    )


def test_a_user_who_may_not_create_the_schema_is_told_the_grant(api, postgres_server, postgres_connection):
    # Given a database where segsync's user may not create schemas
    with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
        admin.execute(f'REVOKE CREATE ON DATABASE "{postgres_connection.database}" FROM segsync')

    # When the bookkeeping schema is first created
    with (
        RedshiftWarehouse(_connection(api, postgres_connection.database)) as warehouse,
        pytest.raises(WarehouseError) as raised,
    ):
        WarehouseState(warehouse, "SEGSYNC").ensure()

    # Then the error quotes the refusal and gives the grant that fixes it
    message = str(raised.value)
    assert "permission denied for database" in message
    assert f'GRANT CREATE ON DATABASE "{postgres_connection.database}" TO "segsync"' in message


def test_a_provisioned_cluster_needs_a_user_or_a_secret():
    # Given a provisioned cluster with neither db_user nor secret_arn, When the connection is validated
    with pytest.raises(ValueError, match="needs 'db_user'"):
        RedshiftConnection.model_validate({"type": "redshift", "cluster_identifier": "c", "database": "d"})

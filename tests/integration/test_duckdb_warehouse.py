"""The DuckDB adapter against a real DuckDB file: batching, names, types and errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from segsync.config import DuckDBConnection
from segsync.errors import WarehouseError
from segsync.warehouse.duckdb import DuckDBWarehouse

COLUMNS = ["id", "spend", "signed_up_at", "active", "email", "note"]


@pytest.fixture
def users_db(tmp_path: Path) -> DuckDBConnection:
    """A DuckDB file holding ten users, one column per type a model commonly returns."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            """
            CREATE TABLE users AS
            SELECT
                i::INTEGER AS id,
                (i * 1.25)::DECIMAL(10, 2) AS spend,
                TIMESTAMP '2024-01-01 08:30:00' + to_days(i::INTEGER) AS signed_up_at,
                i % 2 = 0 AS active,
                'user' || i || '@example.com' AS email,
                NULL::VARCHAR AS note
            FROM range(10) AS r(i)
            """
        )
    return DuckDBConnection(type="duckdb", path=str(path))


def test_stream_yields_batches_of_the_requested_size_with_names_and_types(users_db: DuckDBConnection) -> None:
    # Given a table of ten users
    with DuckDBWarehouse(users_db) as warehouse:
        # When the model is streamed four rows at a time
        batches = list(warehouse.stream("SELECT * FROM users ORDER BY id", batch_rows=4))

    # Then the rows arrive in batches of 4, 4 and 2, each naming the columns
    assert [len(batch.rows) for batch in batches] == [4, 4, 2]
    assert all(batch.columns == COLUMNS for batch in batches)
    # And the values keep their types, NULL included
    assert batches[0].rows[1] == (
        1,
        Decimal("1.25"),
        dt.datetime(2024, 1, 2, 8, 30),
        False,
        "user1@example.com",
        None,
    )
    assert [row[0] for batch in batches for row in batch.rows] == list(range(10))


def test_a_query_with_no_rows_yields_no_batches(users_db: DuckDBConnection) -> None:
    # Given a model that matches nothing
    with DuckDBWarehouse(users_db) as warehouse:
        # When it is streamed
        batches = list(warehouse.stream("SELECT * FROM users WHERE id < 0", batch_rows=4))

    # Then there is nothing to send
    assert batches == []


def test_a_failing_query_raises_warehouse_error_quoting_duckdb(users_db: DuckDBConnection) -> None:
    # Given a model that reads a table that does not exist
    # When it is streamed
    with DuckDBWarehouse(users_db) as warehouse, pytest.raises(WarehouseError) as raised:
        list(warehouse.stream("SELECT * FROM no_such_table", batch_rows=4))

    # Then the error quotes DuckDB, naming the missing table
    assert "no_such_table" in str(raised.value)
    assert "Catalog Error" in str(raised.value)


def test_opening_a_missing_file_raises_warehouse_error_naming_the_path(tmp_path: Path) -> None:
    # Given a path where no DuckDB file exists
    missing = tmp_path / "missing.duckdb"

    # When the adapter opens it (read-only, so it must not create an empty database)
    with pytest.raises(WarehouseError) as raised:
        DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(missing)))

    # Then the error names the file, and no file was created
    assert str(missing) in str(raised.value)
    assert not missing.exists()

"""The incremental state's SQL in the Snowflake dialect, through the real connector and fakesnow."""

from __future__ import annotations

from collections.abc import Iterator

import fakesnow
import pytest
import snowflake.connector

from segsync.config import SnowflakeConnection, UserSync
from segsync.state import INTERNAL_COLUMNS, WarehouseState
from segsync.warehouse.snowflake import SnowflakeWarehouse
from tests.state_runs import run_through

DESTINATION = "https://api.segment.io (env SEGMENT_WRITE_KEY)"


@pytest.fixture
def warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[SnowflakeWarehouse]:
    """A Snowflake session on ANALYTICS.MARTS with 50 customers in an unqualified CUSTOMERS table."""
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD", "fakesnow-accepts-any")
    with fakesnow.patch():
        with snowflake.connector.connect(account="a", user="ADMIN", password="x", database="ANALYTICS",
                                         schema="MARTS") as seed:  # fmt: skip
            seed.cursor().execute(
                "CREATE TABLE customers AS SELECT seq4() + 1 AS customer_id, 'c' || seq4() || '@example.com' AS email,"
                " (seq4() * 7 % 100)::NUMBER(10, 2) AS spend FROM TABLE(GENERATOR(ROWCOUNT => 50))"
            )
        connection = SnowflakeConnection.model_validate(
            {"type": "snowflake", "account": "a", "user": "SEGSYNC", "database": "ANALYTICS", "schema": "MARTS",
             "credentials": {"env": "SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD"}}
        )  # fmt: skip
        with SnowflakeWarehouse(connection) as opened:
            yield opened


def _sync() -> UserSync:
    return UserSync.model_validate(
        {"name": "customers", "object": "user", "source": "w", "destination": "s",
         "model": "SELECT * FROM customers", "key": "customer_id", "traits": {"email": "email", "spend": "spend"}}
    )  # fmt: skip


def test_snowflake_diff_commit_and_rediff(warehouse):
    # Given the bookkeeping schema created in a session whose current schema is MARTS
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    sync = _sync()
    columns = state.model_columns(sync.sql)

    # When the first run diffs and commits
    first, sent, committed = run_through(state, sync, DESTINATION, "run-1")

    # Then every customer is new (the unqualified model still resolves: the schema switch was undone)
    assert [c.name for c in columns] == ["CUSTOMER_ID", "EMAIL", "SPEND"]
    assert (first.source_rows, first.new, first.changed, committed) == (50, 50, 0, 50)
    assert sorted(r[0] for r in sent) == sorted(str(i) for i in range(1, 51))

    # When nothing changed, Then the next diff finds nothing to send
    again, rows, _ = run_through(state, sync, DESTINATION, "run-2")
    assert (again.new, again.changed, again.unchanged, rows) == (0, 0, 50, [])

    # When two customers change a mapped column
    warehouse.execute("UPDATE customers SET spend = spend + 1 WHERE customer_id IN (3, 30)")
    changed, rows, _ = run_through(state, sync, DESTINATION, "run-3")

    # Then exactly those two go out, carrying their new values and the hash delivered before
    assert (changed.changed, changed.unchanged) == (2, 48)
    assert sorted(row[INTERNAL_COLUMNS] for row in rows) == [3, 30]
    assert all(row[3] is not None for row in rows)


def test_snowflake_history_and_rejected_records_are_queryable(warehouse):
    # Given a committed run with one rejected record
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    sync = _sync()
    rejected = [{"row_key": "7", "field": "userId", "reason": "empty"}]
    _, _, committed = run_through(state, sync, DESTINATION, "run-1", rejected)
    assert committed == 49
    state.record_history({"sync": "customers", "run_id": "run-1", "status": "committed", "committed": 49})

    # When an analyst reads them back
    history = state.history("customers")
    rejected = state.rejected("customers")

    # Then the run and the rejection are there, and the rejected key stayed out of state
    assert [(h["run_id"], h["status"], h["committed"]) for h in history] == [("run-1", "committed", 49)]
    assert [(r["row_key"], r["field"]) for r in rejected] == [("7", "userId")]
    in_state = warehouse.query("SELECT ROW_KEY FROM SEGSYNC.SYNC_STATE WHERE ROW_KEY = '7'")
    assert in_state == []

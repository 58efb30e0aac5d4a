"""The incremental state's SQL in the Snowflake dialect, through the real connector and fakesnow."""

from __future__ import annotations

from collections.abc import Iterator

import fakesnow
import pytest
import snowflake.connector

from segsync.config import SnowflakeConnection, UserSync
from segsync.state import INTERNAL_COLUMNS, WarehouseState
from segsync.warehouse.snowflake import SnowflakeWarehouse

DESTINATION = "https://api.segment.io (env SEGMENT_WRITE_KEY)"


@pytest.fixture
def warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[SnowflakeWarehouse]:
    """A Snowflake session on ANALYTICS.MARTS with 50 customers in an unqualified CUSTOMERS table."""
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "fakesnow-accepts-any")
    with fakesnow.patch():
        with snowflake.connector.connect(account="a", user="ADMIN", password="x", database="ANALYTICS",
                                         schema="MARTS") as seed:  # fmt: skip
            seed.cursor().execute(
                "CREATE TABLE customers AS SELECT seq4() + 1 AS customer_id, 'c' || seq4() || '@example.com' AS email,"
                " (seq4() * 7 % 100)::NUMBER(10, 2) AS spend FROM TABLE(GENERATOR(ROWCOUNT => 50))"
            )
        connection = SnowflakeConnection.model_validate(
            {"type": "snowflake", "account": "a", "user": "SEGSYNC", "database": "ANALYTICS", "schema": "MARTS",
             "credentials": {"env": "SNOWFLAKE_PASSWORD"}}
        )  # fmt: skip
        with SnowflakeWarehouse(connection) as opened:
            yield opened


def _sync() -> UserSync:
    return UserSync.model_validate(
        {"name": "customers", "object": "user", "source": "w", "destination": "s",
         "model": "SELECT * FROM customers", "key": "customer_id", "traits": {"email": "email", "spend": "spend"}}
    )  # fmt: skip


def _run(state: WarehouseState, sync: UserSync, run_id: str, rejections: list[dict] | None = None) -> tuple:
    """Diff, read the run's rows as its waves would, and checkpoint them as if every chunk was accepted."""
    state.fence(sync.name, run_id)
    diff = state.prepare(sync, run_id, DESTINATION, state.model_columns(sync.sql), full_resync=False)
    rows = [row for batch in state.warehouse.stream(state.wave_sql(sync, run_id, 0, 1_000), 100) for row in batch.rows]
    state.record_rejections(sync.name, run_id, "chunk 1", rejections or [])
    committed = state.checkpoint(sync, run_id, DESTINATION, 1, 1_000)
    state.drop_run(sync.name, run_id)
    return diff, rows, committed


def test_snowflake_diff_commit_and_rediff(warehouse):
    # Given the bookkeeping schema created in a session whose current schema is MARTS
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    sync = _sync()
    columns = state.model_columns(sync.sql)

    # When the first run diffs and commits
    first, sent, committed = _run(state, sync, "run-1")

    # Then every customer is new (the unqualified model still resolves: the schema switch was undone)
    assert [c.name for c in columns] == ["CUSTOMER_ID", "EMAIL", "SPEND"]
    assert (first.source_rows, first.new, first.changed, committed) == (50, 50, 0, 50)
    assert sorted(r[0] for r in sent) == sorted(str(i) for i in range(1, 51))

    # When nothing changed, Then the next diff finds nothing to send
    again, rows, _ = _run(state, sync, "run-2")
    assert (again.new, again.changed, again.unchanged, rows) == (0, 0, 50, [])

    # When two customers change a mapped column
    warehouse.execute("UPDATE customers SET spend = spend + 1 WHERE customer_id IN (3, 30)")
    changed, rows, _ = _run(state, sync, "run-3")

    # Then exactly those two go out, carrying their new values and the hash delivered before
    assert (changed.changed, changed.unchanged) == (2, 48)
    assert sorted(row[INTERNAL_COLUMNS] for row in rows) == [3, 30]
    assert all(row[3] is not None for row in rows)


def test_snowflake_history_and_rejected_records_are_queryable(warehouse):
    # Given a committed run with one rejected record
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    sync = _sync()
    _, _, committed = _run(state, sync, "run-1", [{"row_key": "7", "field": "userId", "reason": "empty"}])
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

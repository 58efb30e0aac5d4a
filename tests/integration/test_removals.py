"""Removals in the warehouse's SQL, on DuckDB and on Snowflake (fakesnow through the real connector), and the
planner event's baseline under moto.

The run table of a sync that sends removals holds the keys state has and the model lost (``removed``, with the
values last delivered); a checkpoint takes the delivered ones out of state and keeps each delivered row's values
(their canonical texts, by column); a rejected removal stays; a baseline settles every row without sending.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import fakesnow
import orjson
import pytest
import snowflake.connector

from segsync.changes import ChunkValues
from segsync.config import DuckDBConnection, SnowflakeConnection, parse_sync
from segsync.errors import ConfigError
from segsync.local.driver import LambdaContext
from segsync.state import INTERNAL_COLUMNS, WarehouseState
from segsync.store import RunStore
from segsync.warehouse import Warehouse
from segsync.warehouse.duckdb import DuckDBWarehouse
from segsync.warehouse.snowflake import SnowflakeWarehouse

DESTINATION = "https://api.segment.io (env SEGMENT_WRITE_KEY)"
MEMBERS = [("u1", "pro", 1), ("u2", "free", 2), ("u3", "free", 3), ("u4", "pro", 4), ("u5", "free", 5)]
SYNC = parse_sync(
    {"name": "trials", "object": "track", "behavior": "changes", "source": "w", "destination": "s",
     "model": "SELECT * FROM members", "key": "user_id", "user_id": "user_id",
     "events": {"added": "Trial Started", "changed": "Trial Changed", "removed": "Trial Ended"},
     "properties": {"plan": "plan", "seats": "seats", "renews_on": "renews_on"}}
)  # fmt: skip


@pytest.fixture(params=["duckdb", "snowflake"])
def warehouse(request, tmp_path, monkeypatch) -> Iterator[Warehouse]:
    """Five members, in a DuckDB file or a Snowflake session (an unqualified table in ANALYTICS.MARTS)."""
    create = "CREATE TABLE members (user_id VARCHAR, plan VARCHAR, seats INTEGER, renews_on TIMESTAMP)"
    rows = ", ".join(f"('{k}', '{p}', {s}, '2026-01-0{s} 12:00:00.5')" for k, p, s in MEMBERS)
    if request.param == "duckdb":
        path = tmp_path / "w.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute(create)
            con.execute(f"INSERT INTO members VALUES {rows}")
        with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as opened:
            yield opened
        return
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "fakesnow-accepts-any")
    with fakesnow.patch():
        with snowflake.connector.connect(account="a", user="ADMIN", password="x", database="ANALYTICS",
                                         schema="MARTS") as seed:  # fmt: skip
            seed.cursor().execute(create)
            seed.cursor().execute(f"INSERT INTO members VALUES {rows}")
        connection = SnowflakeConnection.model_validate(
            {"type": "snowflake", "account": "a", "user": "SEGSYNC", "database": "ANALYTICS", "schema": "MARTS",
             "credentials": {"env": "SNOWFLAKE_PASSWORD"}}
        )  # fmt: skip
        with SnowflakeWarehouse(connection) as opened:
            yield opened


def _plan(state: WarehouseState, run_id: str, sync: Any = SYNC) -> tuple[Any, list[tuple[Any, ...]]]:
    """Diff as a run does, and read its rows as its waves would."""
    state.fence(sync.name, run_id)
    diff = state.prepare(sync, run_id, DESTINATION, state.model_columns(sync.sql), full_resync=False)
    rows = [row for batch in state.warehouse.stream(state.wave_sql(sync, run_id, 0, 1_000), 100) for row in batch.rows]
    return diff, rows


def _state(warehouse: Warehouse, sync: str = SYNC.name) -> dict[str, dict[str, Any] | None]:
    rows = warehouse.query(f"SELECT ROW_KEY, ROW_VALUES FROM SEGSYNC.SYNC_STATE WHERE SYNC = '{sync}'")
    return {key: {k.lower(): v for k, v in orjson.loads(values).items()} if values else None for key, values in rows}


def test_removed_keys_are_rows_of_the_run_carry_their_last_values_and_leave_state_once_delivered(warehouse):
    # Given a first run of the changes sync, delivered and checkpointed
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    first, rows = _plan(state, "run-1")
    assert (first.new, first.removed, len(rows)) == (5, 0, 5)
    assert state.checkpoint(SYNC, "run-1", DESTINATION, 1, 1_000) == 5

    # Then state keeps each member's values as the canonical texts of the columns the mapping reads
    kept = _state(warehouse)
    assert kept["u2"] == {"user_id": "u2", "plan": "free", "seats": "2", "renews_on": "2026-01-02T12:00:00.5Z"}

    # When two members leave and one changes, and the next run diffs
    warehouse.execute("DELETE FROM members WHERE user_id IN ('u2', 'u4')")
    warehouse.execute("UPDATE members SET plan = 'pro' WHERE user_id = 'u3'")
    second, rows = _plan(state, "run-2")

    # Then the removed keys are rows of the run, with the values last delivered read back as the driver gives them
    assert (second.source_rows, second.changed, second.removed, second.delivered) == (3, 1, 2, 5)
    by_key = {row[0]: row for row in rows}
    assert sorted(by_key) == ["u2", "u3", "u4"]
    assert by_key["u2"][4] == "removed" and by_key["u2"][INTERNAL_COLUMNS:] == (None, None, None, None)
    columns = warehouse.describe(state.wave_sql(SYNC, "run-2", 0, 0))[INTERNAL_COLUMNS:]
    values = ChunkValues(SYNC, columns, found_at=0.0)
    restored = values("removed", by_key["u2"][INTERNAL_COLUMNS - 1], by_key["u2"][INTERNAL_COLUMNS:])
    assert restored[:4] == ("u2", "free", 2, datetime(2026, 1, 2, 12, 0, 0, 500000, tzinfo=UTC))

    # When the wave is delivered but Segment refused u4's removal
    state.record_rejections(SYNC.name, "run-2", "chunk 1", [{"row_key": "u4", "field": "userId", "reason": "x"}])
    committed = state.checkpoint(SYNC, "run-2", DESTINATION, 1, 1_000)

    # Then u2 is forgotten, u4 stays to be removed again next run, u3 keeps its new values
    assert committed == 2
    assert sorted(_state(warehouse)) == ["u1", "u3", "u4", "u5"]
    assert _state(warehouse)["u3"]["plan"] == "pro"
    third, rows = _plan(state, "run-3")
    assert (third.removed, [row[0] for row in rows]) == (1, ["u4"])


def test_a_baseline_settles_every_row_without_sending_and_keeps_their_values(warehouse):
    # Given a sync that never ran
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    state.fence(SYNC.name, "baseline")
    state.prepare(SYNC, "baseline", DESTINATION, state.model_columns(SYNC.sql), full_resync=False)

    # When its run is a baseline, Then every row is recorded as delivered, with its values
    assert state.settle(SYNC, "baseline", DESTINATION, ("new", "changed", "resync", "removed")) == 5
    assert _state(warehouse)["u5"] == {
        "user_id": "u5",
        "plan": "free",
        "seats": "5",
        "renews_on": "2026-01-05T12:00:00.5Z",
    }

    # And a run that no longer holds the sync settles nothing (fenced)
    state.fence(SYNC.name, "another")
    warehouse.execute("DELETE FROM members WHERE user_id = 'u1'")
    state.prepare(SYNC, "late", DESTINATION, state.model_columns(SYNC.sql), full_resync=False)
    assert state.settle(SYNC, "late", DESTINATION, ("removed",)) == 0
    assert "u1" in _state(warehouse)


# --- the planner event ----------------------------------------------------------------------------------


def _context() -> LambdaContext:
    return LambdaContext("segsync-planner", timeout_s=900)


def test_the_planner_event_records_a_baseline_sending_nothing(stack, pushed_project, planner_handler):
    # When the planner is asked for a baseline of the demo's users
    [run] = planner_handler({"sync": "demo-users", "mark_synced": True, "trigger": "manual"}, _context())["runs"]

    # Then the run committed at once: every row recorded, nothing queued, and the history says it was a baseline
    item = RunStore(stack.table(os.environ["RUNS_TABLE"])).run("demo-users", run["run_id"])
    assert (item["status"], item["committed"], item["chunks_enqueued"], item["mark_synced"]) == (
        "committed",
        300,
        0,
        True,
    )
    sqs = stack.client("sqs")
    assert "Messages" not in sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
    warehouse = pushed_project.connections["warehouse"].path
    with duckdb.connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT BASELINE, SENT FROM SEGSYNC.SYNC_RUNS").fetchall() == [(True, 0)]


def test_a_baseline_names_its_syncs(stack, pushed_project, planner_handler):
    with pytest.raises(ConfigError, match="mark_synced records the rows of the syncs it names"):
        planner_handler({"mark_synced": True}, _context())

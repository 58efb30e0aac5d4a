"""Removals in the warehouse's SQL on every warehouse that runs here, and the planner event's baseline under moto.

The run table of a sync that sends removals holds the keys state has and the model lost (``removed``, with the
values last delivered); a checkpoint takes the delivered ones out of state and keeps each delivered row's values
(their canonical texts, by column); a rejected removal stays; a baseline settles every row without sending. A
version 3 bookkeeping schema gains the version 4 columns in place, and each engine's kept-values object is JSON
that gives back a value with quotes, backslashes and line breaks. Databricks (Spark without Delta Lake: no
MERGE, no DELETE) runs the upgrade and the object only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import fakesnow
import orjson
import psycopg
import pytest
import snowflake.connector

from segsync.changes import ChunkValues
from segsync.config import DuckDBConnection, RedshiftConnection, SnowflakeConnection, parse_sync
from segsync.errors import ConfigError
from segsync.local.driver import LambdaContext
from segsync.state import INTERNAL_COLUMNS, WarehouseState
from segsync.store import RunStore
from segsync.warehouse import Warehouse, redshift
from segsync.warehouse.bigquery import BigQueryWarehouse
from segsync.warehouse.databricks import DatabricksWarehouse
from segsync.warehouse.duckdb import DuckDBWarehouse
from segsync.warehouse.postgres import PostgresWarehouse
from segsync.warehouse.snowflake import SnowflakeWarehouse

from ..redshift_data_api import DataApi

DESTINATION = "https://api.segment.io (env SEGMENT_WRITE_KEY)"
MEMBERS = [("u1", "pro", 1), ("u2", "free", 2), ("u3", "free", 3), ("u4", "pro", 4), ("u5", "free", 5)]
ENGINES = ["duckdb", "snowflake", "postgres", "redshift", "bigquery"]
"""Every warehouse that runs the bookkeeping statements here (Spark has no DELETE or MERGE without Delta)."""
TABLES = {"bigquery": "MODELS.members"}
"""Where each warehouse keeps the members (BigQuery names every table with its dataset)."""
TYPES = {"bigquery": ("STRING", "INT64", "DATETIME")}
"""The members' column types (text, integer, timestamp without zone) where they are not VARCHAR, INTEGER, TIMESTAMP."""


def _changes_sync(table: str = "members") -> Any:
    return parse_sync(
        {"name": "trials", "object": "track", "behavior": "changes", "source": "w", "destination": "s",
         "model": f"SELECT * FROM {table}", "key": "user_id", "user_id": "user_id",
         "events": {"added": "Trial Started", "changed": "Trial Changed", "removed": "Trial Ended"},
         "properties": {"plan": "plan", "seats": "seats", "renews_on": "renews_on"}}
    )  # fmt: skip


@dataclass(frozen=True)
class Members:
    """A warehouse holding the five members, the changes sync reading them, and SQL run as their owner."""

    warehouse: Warehouse
    sync: Any
    admin: Callable[[str], None]
    table: str


def _members_sql(engine: str) -> tuple[str, str]:
    text, integer, timestamp = TYPES.get(engine, ("VARCHAR", "INTEGER", "TIMESTAMP"))
    table = TABLES.get(engine, "members")
    create = f"CREATE TABLE {table} (user_id {text}, plan {text}, seats {integer}, renews_on {timestamp})"
    rows = ", ".join(f"('{k}', '{p}', {s}, '2026-01-0{s} 12:00:00.5')" for k, p, s in MEMBERS)
    return create, f"INSERT INTO {table} VALUES {rows}"


@pytest.fixture(params=ENGINES)
def members(request, tmp_path, monkeypatch) -> Iterator[Members]:
    """Five members in each warehouse: a DuckDB file, Snowflake (fakesnow through the real connector, an
    unqualified table in ANALYTICS.MARTS), the real PostgreSQL server, Redshift's SQL over the Data API's
    protocol on that server, and bqemulator."""
    engine = request.param
    statements = _members_sql(engine)
    table = TABLES.get(engine, "members")
    sync = _changes_sync(table)
    if engine == "duckdb":
        path = tmp_path / "w.duckdb"
        with duckdb.connect(str(path)) as con:
            for statement in statements:
                con.execute(statement)
        with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as opened:
            yield Members(opened, sync, opened.execute, table)
        return
    if engine == "snowflake":
        monkeypatch.setenv("SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD", "fakesnow-accepts-any")
        with fakesnow.patch():
            with snowflake.connector.connect(account="a", user="ADMIN", password="x", database="ANALYTICS",
                                             schema="MARTS") as seed:  # fmt: skip
                for statement in statements:
                    seed.cursor().execute(statement)
            connection = SnowflakeConnection.model_validate(
                {"type": "snowflake", "account": "a", "user": "SEGSYNC", "database": "ANALYTICS", "schema": "MARTS",
                 "credentials": {"env": "SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD"}}
            )  # fmt: skip
            with SnowflakeWarehouse(connection) as opened:
                yield Members(opened, sync, opened.execute, table)
        return
    if engine == "bigquery":
        connection = request.getfixturevalue("bigquery_connection")
        with BigQueryWarehouse(connection) as opened:
            for statement in statements:
                opened.execute(statement)
            yield Members(opened, sync, opened.execute, table)
        return
    server = request.getfixturevalue("postgres_server")
    connection = request.getfixturevalue("postgres_connection")

    def admin(sql: str) -> None:
        with psycopg.connect(server.admin_dsn(connection.database), autocommit=True) as con:
            con.execute(sql)

    for statement in statements:
        admin(statement)
    admin("GRANT SELECT ON members TO segsync")
    if engine == "postgres":
        with PostgresWarehouse(connection) as opened:
            yield Members(opened, sync, admin, table)
        return
    monkeypatch.setattr(redshift, "FIRST_POLL_S", 0.001)
    with DataApi(server) as api:
        cluster = RedshiftConnection(
            type="redshift", cluster_identifier="analytics", database=connection.database, db_user="segsync",
            region="us-east-1", endpoint_url=api.url,
        )  # fmt: skip
        with redshift.RedshiftWarehouse(cluster) as opened:
            yield Members(opened, sync, admin, table)


def _plan(state: WarehouseState, run_id: str, sync: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    """Diff as a run does, and read its rows as its waves would."""
    state.fence(sync.name, run_id)
    diff = state.prepare(sync, run_id, DESTINATION, state.model_columns(sync.sql), full_resync=False)
    rows = [row for batch in state.warehouse.stream(state.wave_sql(sync, run_id, 0, 1_000), 100) for row in batch.rows]
    return diff, rows


def _state(warehouse: Warehouse, sync: str = "trials") -> dict[str, dict[str, Any] | None]:
    rows = warehouse.query(f"SELECT ROW_KEY, ROW_VALUES FROM SEGSYNC.SYNC_STATE WHERE SYNC = '{sync}'")
    return {key: {k.lower(): v for k, v in orjson.loads(values).items()} if values else None for key, values in rows}


def test_removed_keys_are_rows_of_the_run_carry_their_last_values_and_leave_state_once_delivered(members):
    # Given a first run of the changes sync, delivered and checkpointed
    warehouse, sync = members.warehouse, members.sync
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    first, rows = _plan(state, "run-1", sync)
    assert (first.new, first.removed, len(rows)) == (5, 0, 5)
    assert state.checkpoint(sync, "run-1", DESTINATION, 1, 1_000) == 5

    # Then state keeps each member's values as the canonical texts of the columns the mapping reads
    kept = _state(warehouse)
    assert kept["u2"] == {"user_id": "u2", "plan": "free", "seats": "2", "renews_on": "2026-01-02T12:00:00.5Z"}

    # When two members leave and one changes, u5 was delivered before values were kept, and the next run diffs
    members.admin(f"DELETE FROM {members.table} WHERE user_id IN ('u2', 'u4')")
    members.admin(f"UPDATE {members.table} SET plan = 'pro' WHERE user_id = 'u3'")
    warehouse.execute("UPDATE SEGSYNC.SYNC_STATE SET ROW_VALUES = NULL WHERE ROW_KEY = 'u5'")
    second, rows = _plan(state, "run-2", sync)
    state.keep_values(sync, "run-2", DESTINATION)

    # Then unchanged u5 gets its values from the model (the same hash: the values it was delivered with)
    assert _state(warehouse)["u5"] == {
        "user_id": "u5",
        "plan": "free",
        "seats": "5",
        "renews_on": "2026-01-05T12:00:00.5Z",
    }

    # Then the removed keys are rows of the run, with the values last delivered read back as the driver gives them
    assert (second.source_rows, second.changed, second.removed, second.delivered) == (3, 1, 2, 5)
    by_key = {row[0]: row for row in rows}
    assert sorted(by_key) == ["u2", "u3", "u4"]
    assert by_key["u2"][4] == "removed" and tuple(by_key["u2"][INTERNAL_COLUMNS:]) == (None, None, None, None)
    columns = warehouse.describe(state.wave_sql(sync, "run-2", 0, 0))[INTERNAL_COLUMNS:]
    values = ChunkValues(sync, columns, found_at=0.0)
    restored = values("removed", by_key["u2"][INTERNAL_COLUMNS - 1], by_key["u2"][INTERNAL_COLUMNS:])
    assert tuple(restored[:4]) == ("u2", "free", 2, datetime(2026, 1, 2, 12, 0, 0, 500000, tzinfo=UTC))

    # When the wave is delivered but Segment refused u4's removal
    state.record_rejections(sync.name, "run-2", "chunk 1", [{"row_key": "u4", "field": "userId", "reason": "x"}])
    committed = state.checkpoint(sync, "run-2", DESTINATION, 1, 1_000)

    # Then u2 is forgotten, u4 stays to be removed again next run, u3 keeps its new values
    assert committed == 2
    assert sorted(_state(warehouse)) == ["u1", "u3", "u4", "u5"]
    assert _state(warehouse)["u3"]["plan"] == "pro"
    third, rows = _plan(state, "run-3", sync)
    assert (third.removed, [row[0] for row in rows]) == (1, ["u4"])


def test_a_baseline_settles_every_row_without_sending_and_keeps_their_values(members):
    # Given a sync that never ran
    warehouse, sync = members.warehouse, members.sync
    state = WarehouseState(warehouse, "SEGSYNC")
    state.ensure()
    state.fence(sync.name, "baseline")
    state.prepare(sync, "baseline", DESTINATION, state.model_columns(sync.sql), full_resync=False)

    # When its run is a baseline, Then every row is recorded as delivered, with its values
    assert state.settle(sync, "baseline", DESTINATION, ("new", "changed", "resync", "removed")) == 5
    assert _state(warehouse)["u5"] == {
        "user_id": "u5",
        "plan": "free",
        "seats": "5",
        "renews_on": "2026-01-05T12:00:00.5Z",
    }

    # And a run that no longer holds the sync settles nothing (fenced)
    state.fence(sync.name, "another")
    members.admin(f"DELETE FROM {members.table} WHERE user_id = 'u1'")
    state.prepare(sync, "late", DESTINATION, state.model_columns(sync.sql), full_resync=False)
    assert state.settle(sync, "late", DESTINATION, ("removed",)) == 0
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


# --- the bookkeeping schema -----------------------------------------------------------------------------

TRICKY = 'say "hi" \\ back\nline\ttab é ☃'
"""A kept value with what a JSON string must escape, and characters outside ASCII."""


def _version_3(warehouse: Warehouse, schema: str) -> WarehouseState:
    """The tables version 4 changes, as version 3 created them: no kept values, no removal counts, no baselines
    (``ensure`` creates the others, as it would have then)."""
    state = WarehouseState(warehouse, schema)
    text = warehouse.dialect.string_type
    warehouse.ensure_schema(schema)
    for statement in (
        f"CREATE TABLE {state.version_table} (VERSION INTEGER, APPLIED_AT TIMESTAMP)",
        f"CREATE TABLE {state.state_table} (SYNC {text}, DESTINATION {text}, ROW_KEY {text}, ROW_HASH {text}, "
        "SYNCED_AT TIMESTAMP, KEY_FORMAT INTEGER)",
        f"CREATE TABLE {state.history_table} (SYNC {text}, RUN_ID {text}, STATUS {text}, TRIGGER {text}, "
        "FULL_RESYNC BOOLEAN, STARTED_AT TIMESTAMP, FINISHED_AT TIMESTAMP, SOURCE_ROWS BIGINT, NEW_ROWS BIGINT, "
        f"CHANGED_ROWS BIGINT, UNCHANGED_ROWS BIGINT, REJECTED BIGINT, SENT BIGINT, COMMITTED BIGINT, ERROR {text})",
    ):
        warehouse.execute(statement)
    warehouse.insert_rows(state.version_table, ["VERSION", "APPLIED_AT"], [(3, datetime(2026, 11, 1))])
    return state


def _upgraded_and_kept(warehouse: Warehouse, schema: str) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Open a version 3 schema with this version, write a baseline run's history, and build a kept-values
    object over a stored row; the run's history as read back, and the object."""
    state = _version_3(warehouse, schema)
    state.ensure()
    warehouse.insert_rows(state.history_table, ["SYNC", "RUN_ID", "STATUS", "REMOVED_ROWS", "BASELINE"],
                          [("trials", "run-1", "committed", 2, True)])  # fmt: skip
    history = [(r["run_id"], r["removed_rows"], r["baseline"]) for r in state.history("trials")]
    values = warehouse.dialect.table(schema, "KEPT")
    text = warehouse.dialect.string_type
    warehouse.execute(f"CREATE TABLE {values} (S {text}, N {text})")
    warehouse.insert_rows(values, ["S", "N"], [(TRICKY, None)])
    [(kept,)] = warehouse.query(f"SELECT {warehouse.dialect.json_object([('s', 'S'), ('n', 'N')])} FROM {values}")
    return history, json.loads(kept)


def test_a_version_3_schema_gains_the_removal_columns_in_place_and_kept_values_are_json(members):
    # Given a bookkeeping schema version 3 made, When this version opens it and a baseline's history is
    # written, and a kept-values object is built over a value JSON must escape and a NULL
    history, kept = _upgraded_and_kept(members.warehouse, "SEGSYNC_V3")

    # Then the run's removals and baseline are recorded, and the object is JSON holding the value as it was
    assert history == [("run-1", 2, True)]
    assert kept == {"s": TRICKY, "n": None}


def test_databricks_gains_the_removal_columns_and_writes_kept_values_as_json(databricks_connection):
    # Given Databricks' SQL on a local Spark (which, without Delta Lake, cannot MERGE or DELETE: the rest of
    # the removal statements only a real workspace proves), the same upgrade and object
    with DatabricksWarehouse(databricks_connection) as warehouse:
        history, kept = _upgraded_and_kept(warehouse, "SEGSYNC_V3")

    # Then the columns were added (ADD COLUMNS) and TO_JSON kept the NULL member
    assert history == [("run-1", 2, True)]
    assert kept == {"s": TRICKY, "n": None}

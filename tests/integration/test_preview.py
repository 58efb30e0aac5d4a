"""``segsync preview`` on real DuckDB files (and Snowflake, through fakesnow): the next run's diff, the whole model,
grouped rejections, exact payloads; nothing sent, nothing written."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import duckdb
import fakesnow
import orjson
import pytest
import snowflake.connector
import yaml

from segsync.chunks import dump_row
from segsync.cli import main
from segsync.commands.preview import preview_next_run, preview_sync
from segsync.config import DuckDBConnection, SnowflakeConnection, UserSync, load_project, parse_sync
from segsync.mapping import Mapped, Mapper, row_message_id
from segsync.state import INTERNAL_COLUMNS, WarehouseState, destination_id
from segsync.warehouse import connect
from segsync.warehouse.snowflake import SnowflakeWarehouse
from tests.rows import chunk_row
from tests.segment_spec import problems

MESSAGE_ID = re.compile(r"^segsync-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

PROBLEM_ROWS = """
CREATE TABLE orders AS SELECT * FROM (VALUES
    ('o1', 'u1', TIMESTAMP '2026-03-01 10:00:00', 12.50::DECIMAL(10, 2)),
    ('o2', 'u2', NULL, 3.00),
    ('o3', 'u3', NULL, 4.00),
    ('o4', NULL, TIMESTAMP '2026-03-01 11:00:00', 5.00),
    ('o5', 'u5', TIMESTAMP '2026-03-01 12:00:00', 6.00),
    ('o5', 'u6', TIMESTAMP '2026-03-01 12:00:00', 7.00),
    (NULL, 'u7', TIMESTAMP '2026-03-01 13:00:00', 8.00),
    ('o8', 'u8', TIMESTAMP '2026-03-01 14:00:00', 9.99)
) AS t(order_id, user_id, placed_at, total)
"""
ORDERS_SYNC = {
    "name": "orders",
    "object": "track",
    "source": "warehouse",
    "destination": "segment",
    "model": "SELECT * FROM orders;",
    "key": "order_id",
    "event": {"value": "Order Completed"},
    "user_id": "user_id",
    "timestamp": "placed_at",
    "properties": {"total": "total"},
}


@pytest.fixture
def orders_project(tmp_path: Path) -> Path:
    """A project over a table with one good row for each kind of rejection, and two good rows."""
    warehouse = tmp_path / "orders.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(PROBLEM_ROWS)
    path = tmp_path / "orders.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "connections": {
                    "warehouse": {"type": "duckdb", "path": str(warehouse)},
                    "segment": {"type": "segment", "write_key": {"env": "SEGMENT_WRITE_KEY"}},
                },
                "syncs": [ORDERS_SYNC],
            },
            sort_keys=False,
        )
    )
    return path


def test_preview_maps_every_row_of_the_model_as_the_sender_would(small_warehouse):
    # Given the small demo warehouse and the demo's User sync
    project = load_project(Path(__file__).resolve().parents[2] / "demo" / "segsync.yml")
    sync = project.sync("demo-users")
    connection = DuckDBConnection(type="duckdb", path=str(small_warehouse))

    # When previewed with a limit of three payloads
    with connect(connection) as warehouse:
        result = preview_sync(sync, WarehouseState(warehouse, "SEGSYNC"), limit=3)

    # Then every row would be one identify, and the payloads are exactly what the mapper builds
    assert (result.rows, dict(result.messages), result.rejected) == (300, {"identify": 300}, 0)
    assert len(result.payloads) == 3
    with duckdb.connect(str(small_warehouse), read_only=True) as con:
        cursor = con.execute(
            "SELECT user_id, email, name, plan, created_at, lifetime_value, is_active, country FROM users"
        )
        columns = [d[0] for d in cursor.description]
        first = next(r for r in cursor.fetchall() if r[0] == result.payloads[0].key)
    mapper = Mapper(sync, columns)
    expected = mapper.map(orjson.loads(dump_row(chunk_row(mapper, list(first)))))  # as a chunk carries it
    assert isinstance(expected, Mapped)
    shown = dict(result.payloads[0].message)
    assert MESSAGE_ID.match(shown.pop("messageId"))
    assert shown == {k: v for k, v in orjson.loads(expected.body).items() if k != "messageId"}
    assert all(problems(p.message) == [] for p in result.payloads)


def test_preview_groups_rejections_by_reason_as_a_run_would_reject_them(orders_project):
    # Given a model with null timestamps, a null user, a duplicate key and a null key
    project = load_project(orders_project)

    # When previewed
    with connect(project.connections["warehouse"]) as warehouse:
        result = preview_sync(project.sync("orders"), WarehouseState(warehouse, "SEGSYNC"), limit=5)

    # Then the two good rows are messages and the rest are grouped by what went wrong
    assert (result.rows, dict(result.messages), result.rejected) == (8, {"track": 2}, 6)
    grouped = {(g.field, g.reason): (g.count, g.example_key) for g in result.grouped()}
    assert grouped == {
        ("timestamp", "timestamp column … is null"): (2, "o2"),
        ("key", "duplicate key: N rows share it"): (2, "o5"),
        ("key", "key column … is null"): (1, None),
        ("userId", "both userId and anonymousId are null or empty"): (1, "o4"),
    }
    assert [p.key for p in result.payloads] == ["o1", "o8"]
    assert result.payloads[0].message["properties"] == {"total": 12.5}
    assert result.payloads[0].message["timestamp"] == "2026-03-01T10:00:00.000+00:00"


def test_the_preview_command_prints_counts_reasons_and_payloads_without_a_write_key(
    orders_project, capsys, monkeypatch
):
    # Given no write key anywhere (preview never needs one) and no AWS endpoint
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)

    # When the command shows the whole model
    code = main(["preview", str(orders_project), "--sync", "orders", "--limit", "1", "--all"])

    # Then it prints the counts, the grouped reasons with an example, and one payload as JSON
    out = capsys.readouterr().out
    assert code == 0
    assert "rows      8" in out and "messages  2  track" in out and "rejected  6" in out
    assert "       2  timestamp: timestamp column … is null" in out
    assert "e.g. key 'o2': timestamp column 'placed_at' is null" in out
    assert "first 1 of 2 messages" in out
    payload = out[out.index("--- key 'o1'") :].split("\n", 1)[1]
    assert orjson.loads(payload[: payload.index("\n}\n") + 2])["event"] == "Order Completed"
    assert "nothing was sent" in out


def test_preview_json_for_one_key(project_file, capsys):
    # When the demo's Track sync is previewed for one event key, as JSON
    code = main(["preview", str(project_file), "--sync", "demo-events", "--key", "evt_00000007", "--json"])

    # Then exactly that event is shown
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] is True
    assert (out["rows"], out["messages"], out["rejected"]) == (1, {"track": 1}, 0)
    (message,) = out["payloads"]
    assert message["type"] == "track" and problems(message) == []
    with duckdb.connect(str(load_project(project_file).connections["warehouse"].path), read_only=True) as con:
        user_id, event = con.execute(
            "SELECT user_id, event_name FROM events WHERE event_id = 'evt_00000007'"
        ).fetchone()
    assert (message["userId"], message["event"]) == (user_id, event)


def test_preview_of_a_key_that_is_not_there_says_so_and_exits_1(project_file, capsys):
    code = main(["preview", str(project_file), "--sync", "demo-users", "--key", "nobody"])
    assert code == 1
    assert "no row has key 'nobody'" in capsys.readouterr().out


def test_preview_changes_nothing_in_the_warehouse(orders_project):
    # Given the warehouse's tables before a preview
    path = load_project(orders_project).connections["warehouse"].path

    def tables() -> list[tuple[str, str]]:
        with duckdb.connect(path, read_only=True) as con:
            return con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()

    before = tables()

    # When previewed, Then no bookkeeping schema or table appeared
    assert main(["preview", str(orders_project), "--sync", "orders", "--json"]) == 0
    assert tables() == before == [("main", "orders")]


def test_a_sync_that_names_a_missing_column_is_one_clear_line(orders_project, capsys):
    # Given the sync maps a column the model does not have
    data = yaml.safe_load(orders_project.read_text())
    data["syncs"][0]["mappings"] = {"context.ip": "ip_address"}
    orders_project.write_text(yaml.safe_dump(data))

    # When previewed, Then it exits 2 naming the sync, the field and the column
    code = main(["preview", str(orders_project), "--sync", "orders"])
    err = capsys.readouterr().err
    assert code == 2
    assert "sync 'orders' field 'mappings.context.ip': column 'ip_address' is not in the model's columns" in err
    assert len(err.strip().splitlines()) == 1


def test_a_failing_model_names_the_sync_and_quotes_the_warehouse(orders_project, capsys):
    data = yaml.safe_load(orders_project.read_text())
    data["syncs"][0]["model"] = "SELECT * FROM no_such_table"
    orders_project.write_text(yaml.safe_dump(data))

    code = main(["preview", str(orders_project), "--sync", "orders", "--json"])

    out = orjson.loads(capsys.readouterr().out)
    assert code == 2 and out["ok"] is False
    assert out["error"].startswith("sync 'orders': model query failed: ")
    assert "no_such_table" in out["error"]


def test_a_group_sync_previews_from_a_json_column(tmp_path):
    # Given accounts with a STRUCT of traits and a JSON text column (as Snowflake VARIANT arrives)
    path = tmp_path / "accounts.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE accounts AS SELECT 'acc_1' AS id, 'u1' AS owner, "
            "{'name': 'Initech', 'seats': 40} AS attrs, '{\"ip\": \"203.0.113.9\"}' AS ctx"
        )
    sync = parse_sync(
        {
            "name": "accounts",
            "object": "group",
            "source": "warehouse",
            "destination": "segment",
            "model": "SELECT * FROM accounts",
            "key": "id",
            "user_id": "owner",
            "mappings": {"traits": "attrs", "context": "ctx"},
        }
    )

    # When previewed
    with connect(DuckDBConnection(type="duckdb", path=str(path))) as warehouse:
        result = preview_sync(sync, WarehouseState(warehouse, "SEGSYNC"), limit=1)

    # Then the group carries the struct as traits and the parsed JSON as context
    (payload,) = result.payloads
    message = payload.message
    assert dict(result.messages) == {"group": 1}
    assert message["traits"] == {"name": "Initech", "seats": 40}
    assert message["context"]["ip"] == "203.0.113.9"
    assert problems(message) == []


# ------------------------------------------------------------------------------------------- the next run

DEMO = Path(__file__).resolve().parents[2] / "demo" / "segsync.yml"


def _deliver(state: WarehouseState, sync, destination: str, run_id: str) -> None:
    """What a committed run leaves in state: the planner's diff, merged as if Segment accepted every row."""
    state.ensure()
    state.fence(sync.name, run_id)
    state.prepare(sync, run_id, destination, state.model_columns(sync.sql), full_resync=False)
    state.checkpoint(sync, run_id, destination, 1, 10**9)
    state.drop_run(sync.name, run_id)


def _planned_message_ids(state: WarehouseState, sync, destination: str) -> dict[str, str]:
    """The messageIds a run plans now, as the planner writes them into its chunks (this writes a run table)."""
    state.prepare(sync, "planned", destination, state.model_columns(sync.sql), full_resync=False)
    planned = {}
    for batch in state.warehouse.stream(state.wave_sql(sync, "planned", 0, 10**9), 100):
        for key, count, row_hash, previous_hash, *_ in (row[:INTERNAL_COLUMNS] for row in batch.rows):
            if key is not None and count == 1:
                planned[key] = row_message_id(sync, key, previous_hash, row_hash, None)
    return planned


@pytest.fixture
def demo_delivered(small_warehouse: Path) -> Path:
    """The small demo warehouse after both demo syncs were delivered once to the demo's destination."""
    project = load_project(DEMO)
    with connect(DuckDBConnection(type="duckdb", path=str(small_warehouse))) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        for sync in project.syncs:
            _deliver(state, sync, destination_id(project.connections["segment"]), "20260301T000000Z-000001")
    return small_warehouse


def test_the_next_run_shows_new_changed_unchanged_removed_and_rejected_rows_with_the_planners_message_ids(
    demo_delivered,
):
    # Given users delivered once, then: one changed, one added, two deleted, one key now shared by two rows
    project = load_project(DEMO)
    sync = project.sync("demo-users")
    destination = destination_id(project.connections["segment"])
    with duckdb.connect(str(demo_delivered)) as con:
        con.execute("UPDATE users SET plan = 'gold' WHERE user_id = 'user_000001'")
        con.execute(
            "INSERT INTO users SELECT 'user_999999', * EXCLUDE (user_id) FROM users WHERE user_id = 'user_000010'"
        )
        con.execute("DELETE FROM users WHERE user_id IN ('user_000002', 'user_000003')")
        con.execute("INSERT INTO users SELECT * FROM users WHERE user_id = 'user_000004'")

    # When the next run is previewed
    with connect(DuckDBConnection(type="duckdb", path=str(demo_delivered))) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        result = preview_next_run(sync, state, destination, limit=10)
        planned = _planned_message_ids(state, sync, destination)

    # Then every row is counted once, by what the run would do with it
    assert (result.changes["new"], result.changes["changed"], result.changes["unchanged"]) == (1, 1, 296)
    assert (result.rejected, result.removed, result.rows, result.delivered) == (2, 2, 300, 300)
    grouped = {(g.field, g.reason): (g.count, g.example_key) for g in result.grouped()}
    assert grouped == {("key", "duplicate key: N rows share it"): (2, "user_000004")}
    # And what would go out is shown with the very messageIds the planner then wrote for it
    assert {(p.key, p.change) for p in result.payloads} == {("user_000001", "changed"), ("user_999999", "new")}
    assert {p.key: p.message["messageId"] for p in result.payloads} == planned
    changed = next(p.message for p in result.payloads if p.change == "changed")
    assert changed["traits"]["plan"] == "gold" and problems(changed) == []


def test_an_append_sync_previews_only_events_never_delivered(demo_delivered):
    # Given events delivered once, then one new event and an old one edited
    project = load_project(DEMO)
    with duckdb.connect(str(demo_delivered)) as con:
        con.execute("INSERT INTO events SELECT 'evt_99999999', * EXCLUDE (event_id) FROM events LIMIT 1")
        con.execute("UPDATE events SET revenue = revenue + 1 WHERE event_id = 'evt_00000007'")

    # When the next run is previewed
    with connect(DuckDBConnection(type="duckdb", path=str(demo_delivered))) as warehouse:
        result = preview_next_run(
            project.sync("demo-events"),
            WarehouseState(warehouse, "SEGSYNC"),
            destination_id(project.connections["segment"]),
            limit=5,
        )

    # Then only the new event goes out (Append never resends an event)
    assert (result.changes["new"], result.changes["changed"], result.changes["unchanged"]) == (1, 0, 2_000)
    assert [p.key for p in result.payloads] == ["evt_99999999"]


def test_the_preview_command_compares_with_the_destination_it_is_told_and_says_where_else_state_is(
    demo_delivered, project_file, capsys
):
    # Given the demo's users delivered to its Segment destination, and one of them changed since
    with duckdb.connect(str(demo_delivered)) as con:
        con.execute("UPDATE users SET plan = 'gold' WHERE user_id = 'user_000001'")

    # When the next run to that destination is previewed
    assert main(["preview", str(project_file), "--sync", "demo-users", "--limit", "1"]) == 0
    out = capsys.readouterr().out

    # Then the counts say one changed row goes out, and its payload is shown
    assert "compared with what was delivered to https://api.segment.io (env SEGMENT_WRITE_KEY)" in out
    assert "\nnew          0  to send (identify)\nchanged      1  to send (identify)\n" in out
    assert "\nunchanged  299  delivered before as they are: not sent\n" in out
    assert "--- key 'user_000001' (changed)" in out and '"plan": "gold"' in out

    # When compared with the local capture endpoint instead, where nothing was delivered
    assert main(["preview", str(project_file), "--sync", "demo-users", "--capture", "--json"]) == 0
    out = orjson.loads(capsys.readouterr().out)

    # Then every row is new there, and the preview names where this sync's state is
    assert (out["destination"], out["new"], out["changed"], out["unchanged"], out["removed"]) == (
        "local capture",
        300,
        0,
        0,
        0,
    )
    assert out["other_destinations"] == ["https://api.segment.io (env SEGMENT_WRITE_KEY)"]


def test_preview_of_a_removed_key_says_it_is_gone(demo_delivered, project_file, capsys):
    with duckdb.connect(str(demo_delivered)) as con:
        con.execute("DELETE FROM users WHERE user_id = 'user_000002'")
    code = main(["preview", str(project_file), "--sync", "demo-users", "--key", "user_000002"])
    assert code == 1
    assert "no row has key 'user_000002': it was delivered before and is no longer in the model" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("how", [[], ["--all"], ["--capture"], ["--key", "user_000001"], ["--json"]])
def test_preview_leaves_the_warehouse_byte_for_byte_unchanged(demo_delivered, project_file, how, capsys):
    # Given a warehouse with state (a run table from the last run dropped), and a change to preview
    with duckdb.connect(str(demo_delivered)) as con:
        con.execute("UPDATE users SET plan = 'gold' WHERE user_id = 'user_000001'")
        con.execute("CHECKPOINT")
    before = (hashlib.sha256(demo_delivered.read_bytes()).hexdigest(), sorted(os.listdir(demo_delivered.parent)))

    # When previewed (every way)
    assert main(["preview", str(project_file), "--sync", "demo-users", *how]) == 0

    # Then the file holds the very same bytes, and no file appeared next to it
    after = (hashlib.sha256(demo_delivered.read_bytes()).hexdigest(), sorted(os.listdir(demo_delivered.parent)))
    assert after == before


def test_the_next_run_previews_on_snowflake_without_creating_or_changing_anything(monkeypatch):
    # Given a Snowflake session (fakesnow) with 50 customers and no bookkeeping schema yet
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD", "fakesnow-accepts-any")
    sync = UserSync.model_validate(
        {"name": "customers", "object": "user", "source": "w", "destination": "s",
         "model": "SELECT * FROM customers", "key": "customer_id", "traits": {"email": "email", "spend": "spend"}}
    )  # fmt: skip
    destination = "https://api.segment.io (env SEGMENT_WRITE_KEY)"
    connection = SnowflakeConnection.model_validate(
        {"type": "snowflake", "account": "a", "user": "SEGSYNC", "database": "ANALYTICS", "schema": "MARTS",
         "credentials": {"env": "SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD"}}
    )  # fmt: skip
    with fakesnow.patch():
        with snowflake.connector.connect(account="a", user="ADMIN", password="x", database="ANALYTICS",
                                         schema="MARTS") as seed:  # fmt: skip
            seed.cursor().execute(
                "CREATE TABLE customers AS SELECT seq4() + 1 AS customer_id, 'c' || seq4() || '@example.com' AS email,"
                " (seq4() * 7 % 100)::NUMBER(10, 2) AS spend FROM TABLE(GENERATOR(ROWCOUNT => 50))"
            )
        with SnowflakeWarehouse(connection) as warehouse:
            state = WarehouseState(warehouse, "SEGSYNC")

            def tables() -> list[tuple]:
                return sorted(warehouse.query("SELECT table_schema, table_name FROM information_schema.tables"))

            # When previewed before any run, Then every customer is new and no schema appeared
            before = tables()
            first = preview_next_run(sync, state, destination, limit=1)
            assert (first.changes["new"], first.rows, first.delivered) == (50, 50, 0)
            assert tables() == before

            # Given a delivery, then two changed customers and one deleted
            _deliver(state, sync, destination, "20260301T000000Z-000001")
            warehouse.execute("UPDATE customers SET spend = spend + 1 WHERE customer_id IN (3, 30)")
            warehouse.execute("DELETE FROM customers WHERE customer_id = 7")
            before = (tables(), warehouse.query(f"SELECT ROW_KEY, ROW_HASH FROM {state.state_table} ORDER BY 1"))

            # When the next run is previewed
            result = preview_next_run(sync, state, destination, limit=5)

            # Then two changed rows go out, one key is gone, and neither a table nor a state row changed
            assert (result.changes["new"], result.changes["changed"], result.changes["unchanged"]) == (0, 2, 47)
            assert (result.removed, result.rejected) == (1, 0)
            assert sorted(p.key for p in result.payloads) == ["3", "30"]
            after = (tables(), warehouse.query(f"SELECT ROW_KEY, ROW_HASH FROM {state.state_table} ORDER BY 1"))
            assert after == before

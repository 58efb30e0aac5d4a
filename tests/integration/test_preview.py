"""``segsync preview`` on real DuckDB files: counts, grouped rejections, exact payloads; nothing sent."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import orjson
import pytest
import yaml

from segsync.chunks import dump_row
from segsync.cli import main
from segsync.commands.preview import preview_sync
from segsync.config import DuckDBConnection, load_project, parse_sync
from segsync.mapping import Mapped, Mapper
from segsync.state import WarehouseState
from segsync.warehouse import connect
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
        first = next(r for r in cursor.fetchall() if r[0] == result.payloads[0][0])
    mapper = Mapper(sync, columns)
    expected = mapper.map(orjson.loads(dump_row(chunk_row(mapper, list(first)))))  # as a chunk carries it
    assert isinstance(expected, Mapped)
    shown = dict(result.payloads[0][1])
    assert MESSAGE_ID.match(shown.pop("messageId"))
    assert shown == {k: v for k, v in orjson.loads(expected.body).items() if k != "messageId"}
    assert all(problems(message) == [] for _, message, _ in result.payloads)


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
    assert [key for key, _, _ in result.payloads] == ["o1", "o8"]
    assert result.payloads[0][1]["properties"] == {"total": 12.5}
    assert result.payloads[0][1]["timestamp"] == "2026-03-01T10:00:00.000+00:00"


def test_the_preview_command_prints_counts_reasons_and_payloads_without_a_write_key(
    orders_project, capsys, monkeypatch
):
    # Given no write key anywhere (preview never needs one) and no AWS endpoint
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)

    # When the command runs
    code = main(["preview", str(orders_project), "--sync", "orders", "--limit", "1"])

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
    ((_, message, _),) = result.payloads
    assert dict(result.messages) == {"group": 1}
    assert message["traits"] == {"name": "Initech", "seats": 40}
    assert message["context"]["ip"] == "203.0.113.9"
    assert problems(message) == []

"""SQL building blocks of the warehouse state, and run ids that sort by time."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from segsync.config import DuckDBConnection
from segsync.planner import new_run_id
from segsync.state import nested, table_suffix
from segsync.warehouse.dialect import Dialect, SnowflakeDialect

RUN_ID = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("SELECT id FROM users;", "SELECT id FROM users"),
        ("  SELECT id FROM users;  \n", "SELECT id FROM users"),
        ("SELECT id FROM users;;", "SELECT id FROM users"),
        ("SELECT 1 ;\n;", "SELECT 1"),
        ("\nSELECT id FROM users\n", "SELECT id FROM users"),
        ("SELECT 'a;b' AS id;", "SELECT 'a;b' AS id"),
    ],
)
def test_a_model_nests_without_its_trailing_semicolons(model, body):
    # Given a model as users write it, When prepared for nesting, Then only trailing semicolons go
    assert nested(model) == body


def test_a_trailing_line_comment_cannot_swallow_the_closing_parenthesis(tmp_path):
    # Given a model ending in a "--" comment, When its columns are asked of a real DuckDB
    import duckdb

    from segsync.state import WarehouseState
    from segsync.warehouse.duckdb import DuckDBWarehouse

    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as warehouse:
        columns = WarehouseState(warehouse, "SEGSYNC").model_columns("SELECT 1 AS id -- latest only")

    # Then the query still parses
    assert [c.name for c in columns] == ["id"]


@pytest.mark.parametrize(("name", "other"), [("demo-users", "demo_users"), ("a-b", "a_b"), ("users", "USERS")])
def test_every_sync_gets_its_own_tables_even_when_names_look_alike(name, other):
    # Given two sync names that would collide if only punctuation and case were folded
    # When their table suffixes are made, Then they differ and are plain identifiers
    assert table_suffix(name) != table_suffix(other)
    assert re.fullmatch(r"[A-Z0-9_]+", table_suffix(name))


def test_identifiers_and_literals_are_quoted_with_their_quotes_doubled():
    assert Dialect().quote('say "hi"') == '"say ""hi"""'
    assert Dialect().literal("it's") == "'it''s'"


def test_snowflake_literals_escape_backslashes_too():
    # Given a name with a backslash, When quoted for Snowflake (where a backslash escapes), Then it survives
    assert SnowflakeDialect().literal("a\\b's") == "'a\\\\b''s'"
    assert Dialect().literal("a\\b") == "'a\\b'"


def test_run_id_has_a_utc_timestamp_and_a_random_suffix():
    # Given a moment, When a run id is made for it, Then it starts with that moment in UTC
    run_id = new_run_id(datetime(2026, 3, 1, 10, 30, 5, tzinfo=UTC))
    assert RUN_ID.match(run_id)
    assert run_id.startswith("20260301T103005000Z-")


def test_run_id_converts_other_time_zones_to_utc():
    # Given noon at UTC+2, When a run id is made, Then it carries 10:00 UTC
    moment = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert new_run_id(moment).startswith("20240101T100000000Z-")


def test_run_ids_sort_by_time():
    # Given run ids made a year, no time, a millisecond, a second and a day after a year's last second
    start = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    a_year, now, a_millisecond, a_second, a_day = (
        new_run_id(start + delta)
        for delta in (
            timedelta(days=365),
            timedelta(0),
            timedelta(milliseconds=1),
            timedelta(seconds=1),
            timedelta(days=1),
        )
    )

    # When sorted as text (the runs table's sort key), Then they come out in time order
    assert sorted([a_year, now, a_millisecond, a_second, a_day]) == [now, a_millisecond, a_second, a_day, a_year]


def utc_prefix(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z"


def test_run_ids_made_in_the_same_second_are_unique():
    # Given one moment, When twenty runs start in it
    moment = datetime(2026, 3, 1, 10, 30, 5, tzinfo=UTC)
    ids = {new_run_id(moment) for _ in range(20)}

    # Then no two share an id (24 random bits: a collision among 20 has odds of about 1 in 100,000)
    assert len(ids) == 20


def test_run_id_defaults_to_now():
    # Given no moment, When a run id is made
    before = utc_prefix(datetime.now(UTC))
    run_id = new_run_id()
    after = utc_prefix(datetime.now(UTC))

    # Then its time is the current UTC time
    assert RUN_ID.match(run_id)
    assert before <= run_id[:19] <= after

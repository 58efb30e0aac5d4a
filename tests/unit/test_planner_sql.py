"""The planner's query wrapper and run ids: the SQL a warehouse receives, and ids that sort by time."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from segsync.planner import KEY_COUNT_COLUMN, keyed_query, new_run_id

RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def test_model_is_wrapped_so_the_warehouse_counts_each_key():
    # Given a model and a plain key column, When wrapped
    sql = keyed_query("SELECT id, email FROM users", "id")

    # Then the warehouse returns every column plus how many rows share each key
    assert sql == (
        f"SELECT m.*, COUNT(*) OVER (PARTITION BY m.id) AS {KEY_COUNT_COLUMN} "
        "FROM (\nSELECT id, email FROM users\n) AS m"
    )


@pytest.mark.parametrize("key", ["id", "USER_ID", "_key", "order_id2", "col$1"])
def test_simple_identifiers_stay_unquoted_so_snowflake_case_folding_applies(key):
    # Given a key that is a plain identifier, When wrapped, Then it is referenced unquoted
    assert f"PARTITION BY m.{key})" in keyed_query("SELECT 1", key)


@pytest.mark.parametrize(
    ("key", "reference"),
    [
        ("order id", 'm."order id"'),
        ("user-id", 'm."user-id"'),
        ("2nd_key", 'm."2nd_key"'),
        ("$key", 'm."$key"'),
        ('say "hi"', 'm."say ""hi"""'),
        ("id) FROM x; DROP TABLE users; --", 'm."id) FROM x; DROP TABLE users; --"'),
    ],
)
def test_other_names_are_quoted_with_embedded_quotes_doubled(key, reference):
    # Given a key that is not a plain identifier, When wrapped
    sql = keyed_query("SELECT 1", key)

    # Then it is one quoted identifier, with no way to break out of the quotes
    assert f"PARTITION BY {reference})" in sql


@pytest.mark.parametrize(
    ("model", "subquery"),
    [
        ("SELECT id FROM users;", "(\nSELECT id FROM users\n)"),
        ("  SELECT id FROM users;  \n", "(\nSELECT id FROM users\n)"),
        ("SELECT id FROM users;;", "(\nSELECT id FROM users\n)"),
        ("SELECT 1 ;\n;", "(\nSELECT 1\n)"),
        ("\nSELECT id FROM users\n", "(\nSELECT id FROM users\n)"),
        ("SELECT id FROM users ;", "(\nSELECT id FROM users\n)"),
    ],
)
def test_trailing_semicolon_and_whitespace_are_stripped_so_the_model_nests(model, subquery):
    # Given a model as users write it, with a trailing semicolon or blank lines, When wrapped
    sql = keyed_query(model, "id")

    # Then the subquery is the statement alone
    assert sql.endswith(f"FROM {subquery} AS m")


def test_semicolons_inside_the_model_are_kept():
    # Given a model with a semicolon inside a string literal
    sql = keyed_query("SELECT 'a;b' AS id;", "id")

    # Then only the trailing one is removed
    assert "FROM (\nSELECT 'a;b' AS id\n) AS m" in sql


def test_a_trailing_line_comment_cannot_swallow_the_closing_parenthesis():
    # Given a model ending in a "--" comment, When wrapped
    sql = keyed_query("SELECT * FROM t -- latest only", "id")

    # Then the closing parenthesis stands on its own line, outside the comment
    assert sql.endswith("-- latest only\n) AS m")


def test_run_id_has_a_utc_timestamp_and_a_random_suffix():
    # Given a moment, When a run id is made for it, Then it starts with that moment in UTC
    run_id = new_run_id(datetime(2026, 3, 1, 10, 30, 5, tzinfo=UTC))
    assert RUN_ID.match(run_id)
    assert run_id.startswith("20260301T103005Z-")


def test_run_id_converts_other_time_zones_to_utc():
    # Given noon at UTC+2, When a run id is made, Then it carries 10:00 UTC
    moment = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert new_run_id(moment).startswith("20240101T100000Z-")


def test_run_ids_sort_by_time():
    # Given run ids made a year, no time, a second and a day after a year's last second
    start = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    a_year, now, a_second, a_day = (
        new_run_id(start + delta)
        for delta in (timedelta(days=365), timedelta(0), timedelta(seconds=1), timedelta(days=1))
    )

    # When sorted as text (the runs table's sort key), Then they come out in time order
    assert sorted([a_year, now, a_second, a_day]) == [now, a_second, a_day, a_year]


def utc_prefix(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S}Z"


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
    assert before <= run_id[:16] <= after

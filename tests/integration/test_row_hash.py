"""The row hash in the warehouse: different rows never share a hash input, and a changed value changes it."""

from __future__ import annotations

import pytest

from segsync.config import parse_sync
from segsync.state import WarehouseState

SYNC = parse_sync(
    {"name": "users", "object": "user", "source": "w", "destination": "s", "model": "SELECT * FROM t",
     "key": "k", "traits": {"x": "x", "y": "y"}}
)  # fmt: skip


def _hash(state: WarehouseState, x: str, y: str) -> str:
    """The row hash of user 'a' whose traits are the SQL expressions ``x`` and ``y``."""
    model = f"SELECT 'a' AS k, CAST({x} AS VARCHAR) AS x, CAST({y} AS VARCHAR) AS y"
    columns = state.model_columns(model)
    [row] = [r for batch in state.warehouse.stream(state.keyed(SYNC, columns, model), 10) for r in batch.rows]
    return row[2]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param(
            ("'p' || CHR(31) || 'q'", "'r'"), ("'p'", "'q' || CHR(31) || 'r'"), id="a separator inside a value"
        ),
        pytest.param(("NULL", "'r'"), ("'<segsync:null>'", "'r'"), id="0.1's null marker as a value"),
        pytest.param(("NULL", "'r'"), ("'~'", "'r'"), id="the null mark as a value"),
        pytest.param(("NULL", "'r'"), ("''", "'r'"), id="empty text is not null"),
        pytest.param(("'1:x'", "NULL"), ("'1'", "'x'"), id="a length prefix inside a value"),
    ],
)
def test_rows_that_differ_never_share_a_hash(duckdb_state, one, other):
    # Given two rows of one user that a separator-joined hash input would confuse
    # When both are hashed, Then the hashes differ (the second is a change to send)
    assert _hash(duckdb_state, *one) != _hash(duckdb_state, *other)


def test_the_same_row_hashes_alike_whatever_the_session_time_zone(duckdb_state):
    # Given a row with a TIMESTAMPTZ trait (whose plain text follows the session's TimeZone)
    model = "SELECT 'a' AS k, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS x, NULL AS y"
    columns = duckdb_state.model_columns(model)

    def row_hash() -> str:
        return next(duckdb_state.warehouse.stream(duckdb_state.keyed(SYNC, columns, model), 10)).rows[0][2]

    # When hashed in UTC and again in Tokyo time, Then the hash is the same (nothing looks changed)
    duckdb_state.warehouse.execute("SET TimeZone = 'UTC'")
    first = row_hash()
    duckdb_state.warehouse.execute("SET TimeZone = 'Asia/Tokyo'")
    assert row_hash() == first

"""A run table's rows are numbered 1..N, once each, however many threads built the table: its waves and
checkpoints go by these numbers (``SEQ``), so a number missing or shared would skip or repeat rows."""

from __future__ import annotations

import pytest

from segsync.config import parse_sync
from segsync.state import KEY, SEQ

ROWS = 300_000
"""More than two of DuckDB's row groups (122,880 rows), so two threads build the run table together."""

SYNC = parse_sync(
    {"name": "users", "object": "user", "source": "w", "destination": "s", "key": "k", "traits": {"x": "x"},
     "model": f"SELECT 'user_' || i AS k, i % 7 AS x FROM range({ROWS}) AS r(i)"}
)  # fmt: skip


@pytest.fixture
def state(duckdb_state):
    duckdb_state.warehouse.execute("SET threads = 2")
    duckdb_state.ensure()
    return duckdb_state


def test_every_row_of_a_run_table_has_its_own_number_from_one_to_n(state):
    # Given a model of 300,000 rows, diffed into a run table by two threads
    columns = state.model_columns(SYNC.sql)
    state.prepare(SYNC, "r1", "dest", columns, full_resync=False)

    # When its numbers are counted
    table = state.run_table(SYNC.name, "r1")
    [(rows, numbered, distinct, first, last)] = state.warehouse.query(
        f"SELECT COUNT(*), COUNT({SEQ}), COUNT(DISTINCT {SEQ}), MIN({SEQ}), MAX({SEQ}) FROM {table}"
    )

    # Then each row has one, none is shared, and they run 1..N without a gap (the waves' spans stay full)
    assert (rows, numbered, distinct, first, last) == (ROWS, ROWS, ROWS, 1, ROWS)
    assert state.last_seq(SYNC.name, "r1") == ROWS


def test_waves_read_every_row_once_in_spans_of_numbers(state):
    # Given the run table of the same model
    columns = state.model_columns(SYNC.sql)
    state.prepare(SYNC, "r1", "dest", columns, full_resync=False)

    # When it is read as the planner reads it: spans of 50,000 numbers, each in number order
    keys: list[str] = []
    for after in range(0, ROWS, 50_000):
        wave = state.wave_sql(SYNC, "r1", after, 50_000, after + 50_000)
        rows = state.warehouse.query(f"SELECT w.{KEY}, w.{SEQ} FROM ({wave}) AS w")
        assert [seq for _, seq in rows] == list(range(after + 1, after + 50_001))
        keys += [key for key, _ in rows]

    # Then every row comes once
    assert len(keys) == len(set(keys)) == ROWS

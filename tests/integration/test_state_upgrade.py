"""State written by segsync 0.1 (key format 1) is re-keyed at its sync's next run, and re-sends only changes.

The 0.1 state below is written with 0.1's own SQL: keys as ``CAST(key AS VARCHAR)``, rows hashed as
``MD5(CONCAT_WS(CHR(31), fingerprint, COALESCE(CAST(c AS VARCHAR), '<segsync:null>'), ...))``.
"""

from __future__ import annotations

import duckdb
import pytest

from segsync.config import DuckDBConnection, parse_sync
from segsync.mapping import mapping_fingerprint
from segsync.state import SCHEMA_VERSION, WarehouseState
from segsync.upgrade import rekey_legacy_state
from segsync.warehouse.duckdb import DuckDBWarehouse

DESTINATION = "https://api.segment.io (env SEGMENT_WRITE_KEY)"
SYNC = parse_sync(
    {"name": "accounts", "object": "user", "source": "w", "destination": "s", "model": "SELECT * FROM accounts",
     "key": "account_no", "traits": {"plan": "plan", "seats": "seats"}}
)  # fmt: skip


@pytest.fixture
def legacy(tmp_path):
    """Three accounts keyed by DECIMAL(18,2), all delivered by 0.1, plus one that has left the model."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE accounts AS SELECT * FROM (VALUES (7.50::DECIMAL(18,2), 'free', 3), "
            "(8.00::DECIMAL(18,2), 'pro', NULL), (9.25::DECIMAL(18,2), 'pro', 10)) AS t(account_no, plan, seats)"
        )
        con.execute("CREATE SCHEMA SEGSYNC")
        con.execute(
            "CREATE TABLE SEGSYNC.SYNC_STATE (SYNC VARCHAR, DESTINATION VARCHAR, ROW_KEY VARCHAR, "
            "ROW_HASH VARCHAR, SYNCED_AT TIMESTAMP)"
        )
        fingerprint = mapping_fingerprint(SYNC)
        con.execute(
            "INSERT INTO SEGSYNC.SYNC_STATE SELECT 'accounts', ?, CAST(account_no AS VARCHAR), "
            "MD5(CONCAT_WS(CHR(31), ?, COALESCE(CAST(account_no AS VARCHAR), '<segsync:null>'), "
            "COALESCE(CAST(plan AS VARCHAR), '<segsync:null>'), COALESCE(CAST(seats AS VARCHAR), '<segsync:null>'))), "
            "TIMESTAMP '2026-11-01' FROM accounts",
            [DESTINATION, fingerprint],
        )
        con.execute(
            "INSERT INTO SEGSYNC.SYNC_STATE VALUES ('accounts', ?, '3.00', 'gone', TIMESTAMP '2026-11-01')",
            [DESTINATION],
        )
        # Since 0.1's last run, one account changed plan.
        con.execute("UPDATE accounts SET plan = 'enterprise' WHERE account_no = 9.25")
    with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as warehouse:
        yield warehouse


def test_an_upgrade_rekeys_legacy_state_and_resends_only_what_changed(legacy):
    # Given state written by 0.1, When the current version opens the schema and diffs the sync
    state = WarehouseState(legacy, "SEGSYNC")
    state.ensure()
    columns = state.model_columns(SYNC.sql)
    rekeyed = rekey_legacy_state(state, SYNC, DESTINATION, columns)
    diff = state.prepare(SYNC, "run-1", DESTINATION, columns, full_resync=False)

    # Then its keys are the canonical texts, and only the account that changed is due
    assert rekeyed
    assert (diff.new, diff.changed, diff.unchanged) == (0, 1, 2)
    keys = legacy.query("SELECT ROW_KEY, KEY_FORMAT FROM SEGSYNC.SYNC_STATE ORDER BY ROW_KEY")
    assert keys == [("3.00", 1), ("7.5", 2), ("8", 2), ("9.25", 2)]
    assert legacy.query(f"SELECT MAX(VERSION) FROM {state.version_table}") == [(SCHEMA_VERSION,)]

    # And the next run does not look again (the key that left the model is marked, not re-read)
    assert not rekey_legacy_state(state, SYNC, DESTINATION, columns)


def test_a_fresh_schema_starts_at_the_current_version_with_nothing_to_rekey(tmp_path):
    # Given an empty warehouse
    path = tmp_path / "fresh.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE accounts AS SELECT 7.5::DECIMAL(18,2) AS account_no, 'free' AS plan, 1 AS seats")

    # When the bookkeeping schema is created twice (a second planner racing the first)
    with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        state.ensure()
        state.ensure()

        # Then it is at the current version, and there is no legacy state to re-key
        assert warehouse.query(f"SELECT MAX(VERSION) FROM {state.version_table}") == [(SCHEMA_VERSION,)]
        assert not rekey_legacy_state(state, SYNC, DESTINATION, state.model_columns(SYNC.sql))

"""State written by segsync 0.1 (key format 1) is re-keyed at its sync's next run, and re-sends only changes.

The 0.1 state below is written with 0.1's own SQL: keys as ``CAST(key AS VARCHAR)``, rows hashed as
``MD5(CONCAT_WS(CHR(31), fingerprint, COALESCE(CAST(c AS VARCHAR), '<segsync:null>'), ...))``.
"""

from __future__ import annotations

import duckdb
import orjson
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


CLEARING = parse_sync(
    {"name": "accounts", "object": "user", "source": "w", "destination": "s", "model": "SELECT * FROM accounts",
     "key": "account_no", "traits": {"plan": "plan", "seats": "seats"}, "on_removal": "clear"}
)  # fmt: skip


def test_a_version_3_schema_gains_kept_values_and_a_sync_that_starts_clearing_keeps_them_from_the_model(tmp_path):
    # Given a bookkeeping schema at version 3, whose state was delivered before any sync kept values
    path = tmp_path / "v3.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE accounts AS SELECT * FROM (VALUES (1, 'free', 3), (2, 'pro', 5)) "
            "AS t(account_no, plan, seats)"
        )
        con.execute("CREATE SCHEMA SEGSYNC")
        con.execute("CREATE TABLE SEGSYNC.SCHEMA_VERSION (VERSION INTEGER, APPLIED_AT TIMESTAMP)")
        con.execute("INSERT INTO SEGSYNC.SCHEMA_VERSION VALUES (3, TIMESTAMP '2026-11-01')")
        con.execute(
            "CREATE TABLE SEGSYNC.SYNC_STATE (SYNC VARCHAR, DESTINATION VARCHAR, ROW_KEY VARCHAR, ROW_HASH VARCHAR, "
            "SYNCED_AT TIMESTAMP, KEY_FORMAT INTEGER)"
        )
        con.execute(
            "CREATE TABLE SEGSYNC.SYNC_RUNS (SYNC VARCHAR, RUN_ID VARCHAR, STATUS VARCHAR, TRIGGER VARCHAR, "
            "FULL_RESYNC BOOLEAN, STARTED_AT TIMESTAMP, FINISHED_AT TIMESTAMP, SOURCE_ROWS BIGINT, NEW_ROWS BIGINT, "
            "CHANGED_ROWS BIGINT, UNCHANGED_ROWS BIGINT, REJECTED BIGINT, SENT BIGINT, COMMITTED BIGINT, ERROR VARCHAR)"
        )
        con.execute(
            "CREATE TABLE SEGSYNC.REJECTED_RECORDS (SYNC VARCHAR, RUN_ID VARCHAR, ROW_KEY VARCHAR, FIELD VARCHAR, "
            "REASON VARCHAR, REJECTED_AT TIMESTAMP, SOURCE VARCHAR)"
        )
        con.execute("CREATE TABLE SEGSYNC.RUN_FENCE (SYNC VARCHAR, RUN_ID VARCHAR)")
    with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        columns = state.model_columns(CLEARING.sql)

        # When the current version opens it, Then state and history have the new columns
        state.ensure()
        assert warehouse.query(f"SELECT MAX(VERSION) FROM {state.version_table}") == [(SCHEMA_VERSION,)]
        state.record_history({"sync": "accounts", "run_id": "run-0", "status": "committed", "removed": 0})
        assert warehouse.query("SELECT REMOVED_ROWS, BASELINE FROM SEGSYNC.SYNC_RUNS") == [(0, False)]

        # Given both accounts delivered the way version 3 delivered them: no values kept
        state.fence(CLEARING.name, "run-1")
        state.prepare(CLEARING, "run-1", DESTINATION, columns, full_resync=False)
        assert state.checkpoint(CLEARING, "run-1", DESTINATION, 1, 10) == 2
        warehouse.execute("UPDATE SEGSYNC.SYNC_STATE SET ROW_VALUES = NULL")

        # When the next run finds both accounts unchanged, Then it keeps the values they were delivered with
        state.fence(CLEARING.name, "run-2")
        diff = state.prepare(CLEARING, "run-2", DESTINATION, columns, full_resync=False)
        state.keep_values(CLEARING, "run-2", DESTINATION)
        kept = dict(warehouse.query("SELECT ROW_KEY, ROW_VALUES FROM SEGSYNC.SYNC_STATE"))
        assert diff.unchanged == 2 and orjson.loads(kept["2"]) == {"account_no": "2", "plan": "pro", "seats": "5"}

        # And when account 2 then leaves, its removal carries them
        warehouse.execute("DELETE FROM accounts WHERE account_no = 2")
        state.fence(CLEARING.name, "run-3")
        removal = state.prepare(CLEARING, "run-3", DESTINATION, columns, full_resync=False)
        [row] = warehouse.query(state.wave_sql(CLEARING, "run-3", 0, 10))
        assert removal.removed == 1 and (row[0], row[4], orjson.loads(row[6])["plan"]) == ("2", "removed", "pro")

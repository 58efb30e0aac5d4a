"""State written by segsync 0.1 (key format 1), brought to the current format at each sync's next run.

Format 1 keyed state by ``CAST(key AS VARCHAR)`` (``7.50`` for a DECIMAL(18,2) 7.5, session-dependent
for TIMESTAMPTZ) and hashed rows as ``MD5(CONCAT_WS(CHR(31), fingerprint, COALESCE(CAST(c AS VARCHAR),
'<segsync:null>'), ...))``, which a value holding CHR(31) or that marker could imitate. Re-keying joins
the model to its old state once: every state row whose old key text a model row still has takes that
row's canonical key text, and its current hash where the row is unchanged since (its old hash still
matches), so an upgrade re-sends only what changed. Rows the model no longer has keep their old text
(key format 1, marked so the next run does not look again).
"""

from __future__ import annotations

from segsync.config import AnySync
from segsync.mapping import mapping_fingerprint, source_columns
from segsync.state import KEY, KEY_FORMAT, ROW_HASH, WarehouseState, nested
from segsync.warehouse.dialect import ModelColumn

LEGACY_FORMAT = 1
LEGACY_NULL = "'<segsync:null>'"


def rekey_legacy_state(state: WarehouseState, sync: AnySync, destination: str, columns: list[ModelColumn]) -> bool:
    """Re-key the sync's format-1 state rows, if it has any (before its diff); whether it had."""
    where = state.delivered_to(sync.name, destination)
    legacy = state.warehouse.query(f"SELECT COUNT(*) FROM {state.state_table} WHERE {where} AND KEY_FORMAT IS NULL")
    if not legacy[0][0]:
        return False
    model = f"SELECT * FROM (\n{nested(sync.sql)}\n) AS src"
    # The key column's raw value sits among the model columns of the keyed rows (``k``).
    state.warehouse.execute(
        f"MERGE INTO {state.state_table} AS s USING (\n"
        f"SELECT OLD_KEY, MIN(NEW_KEY) AS NEW_KEY, MIN(OLD_HASH) AS OLD_HASH, MIN(NEW_HASH) AS NEW_HASH FROM (\n"
        f"SELECT {legacy_key(state, sync, columns, 'k')} AS OLD_KEY, k.{KEY} AS NEW_KEY, "
        f"{legacy_hash(state, sync, columns, 'k')} AS OLD_HASH, "
        f"k.{ROW_HASH} AS NEW_HASH FROM (\n{state.keyed(sync, columns, model)}\n) AS k\n"
        ") AS pairs GROUP BY OLD_KEY HAVING COUNT(*) = 1\n"
        f") AS u ON {state.delivered_to(sync.name, destination, 's')} "
        "AND s.ROW_KEY = u.OLD_KEY AND s.KEY_FORMAT IS NULL\n"
        "WHEN MATCHED THEN UPDATE SET ROW_KEY = u.NEW_KEY, "
        f"ROW_HASH = CASE WHEN s.ROW_HASH = u.OLD_HASH THEN u.NEW_HASH ELSE s.ROW_HASH END, KEY_FORMAT = {KEY_FORMAT}"
    )
    state.warehouse.execute(
        f"UPDATE {state.state_table} SET KEY_FORMAT = {LEGACY_FORMAT} WHERE {where} AND KEY_FORMAT IS NULL"
    )
    return True


def legacy_key(state: WarehouseState, sync: AnySync, columns: list[ModelColumn], alias: str) -> str:
    """Format 1's key text of the rows under ``alias``."""
    return f"CAST({alias}.{state.column(sync.key, columns, sync.name, 'key')} AS VARCHAR)"


def legacy_hash(state: WarehouseState, sync: AnySync, columns: list[ModelColumn], alias: str) -> str:
    """Format 1's row hash of the rows under ``alias``."""
    d = state.dialect
    values = ", ".join(
        f"COALESCE(CAST({alias}.{d.quote(c)} AS VARCHAR), {LEGACY_NULL})"
        for c in source_columns(sync, [c.name for c in columns])
    )
    return f"MD5(CONCAT_WS(CHR(31), {d.literal(mapping_fingerprint(sync))}, {values}))"

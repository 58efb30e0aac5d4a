"""Incremental state in the warehouse: what was delivered, the diff that finds what changed, run history.

The diff is one SQL statement the warehouse runs (it scales there, not in a Lambda). Every statement
here is written once; what differs between warehouses is the adapter's dialect (``warehouse.dialect``),
which also writes each key's canonical text: the one text of a key everywhere segsync shows or stores it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from segsync.changes import (
    CHANGED,
    NEW,
    REMOVED,
    RESYNC,
    UNCHANGED,
    keeps_values,
    sent_kinds,
    tracks_removals,
)
from segsync.config import AnySync, SegmentConnection, TrackSync
from segsync.errors import ConfigError
from segsync.mapping import column_index, mapping_fingerprint, source_columns
from segsync.warehouse import Warehouse
from segsync.warehouse.dialect import ModelColumn

KEY = "__segsync_key"
KEY_COUNT = "__segsync_key_count"
ROW_HASH = "__segsync_row_hash"
PREVIOUS_HASH = "__segsync_previous_hash"
CHANGE = "__segsync_change"
SEQ = "__segsync_seq"
PREVIOUS_VALUES = "__segsync_previous_values"
INTERNAL_COLUMNS = 7
"""A run table's first columns are segsync's (key text, key count, row hash, the hash delivered last, change,
the row's number in the run, a removed key's values as last delivered); the model's follow. Waves go out in
``SEQ`` order and checkpoint by ``SEQ`` range."""
KEYED_COLUMNS = 3
"""``keyed`` rows start with the key text, key count and row hash; the model's columns follow."""

KEY_FORMAT = 2
"""State rows written with canonical key texts and length-prefixed row hashes (format 1: see segsync.upgrade)."""
SCHEMA_VERSION = 4
"""The bookkeeping schema's shape; ``ensure`` brings an older one up to it (3: rejected records say which part of
a run rejected them, and runs hold a fence in the warehouse; 4: state keeps the values a removal is sent with,
and history counts removals and says which runs were baselines)."""
FINAL_STATUSES = ("committed", "failed", "abandoned")
REJECTION_DETAIL_LIMIT = 1_000
"""Rows with a null or duplicate key recorded one by one, per run; past this only their counts are kept."""
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
NULL_KEY_REASON = "key column '{column}' is null"
DUPLICATE_KEY_REASON = "duplicate key: {count} rows share it"
HISTORY_COLUMNS = (
    "SYNC", "RUN_ID", "STATUS", "TRIGGER", "FULL_RESYNC", "STARTED_AT", "FINISHED_AT", "SOURCE_ROWS",
    "NEW_ROWS", "CHANGED_ROWS", "UNCHANGED_ROWS", "REJECTED", "SENT", "COMMITTED", "ERROR", "REMOVED_ROWS",
    "BASELINE",
)  # fmt: skip
REJECTED_COLUMNS = ("SYNC", "RUN_ID", "ROW_KEY", "FIELD", "REASON", "REJECTED_AT", "SOURCE")
LOCAL_CAPTURE = "local capture"


@dataclass(frozen=True)
class DiffCounts:
    """How the model compares with what was delivered before."""

    source_rows: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    null_keys: int = 0
    duplicate_keys: int = 0
    removed: int = 0
    """Keys delivered before that the model no longer has (looked for only where removals are sent)."""
    delivered: int = 0
    """Keys state held for the sync and destination before the run (counted only where removals are sent)."""
    to_send: int = 0
    """Rows of the kinds the sync sends a message for (``segsync.changes.sent_kinds``)."""

    @property
    def bad_keys(self) -> int:
        return self.null_keys + self.duplicate_keys


def destination_id(destination: SegmentConnection) -> str:
    """Which Segment source state belongs to: pointing a sync at another one sends everything there.

    The API base and where the write key comes from (never the key itself). segsync's own capture endpoint
    (``segsync demo``, ``run --local --faults``) is one place whatever its port and the key it is given.
    """
    if destination.local_capture:
        return LOCAL_CAPTURE
    key = destination.write_key
    return f"{destination.api_base} ({'env ' + key.env if key.env else 'secret ' + str(key.secret)})"


def table_suffix(sync_name: str) -> str:
    """A sync's tables: readable, unquoted-safe in every dialect, distinct for every sync name, and short
    enough that a run's table name fits Postgres's 63 characters."""
    digest = hashlib.blake2b(sync_name.encode(), digest_size=3).hexdigest().upper()
    return re.sub(r"[^A-Za-z0-9]", "_", sync_name).upper()[:24] + "_" + digest


class WarehouseState:
    """The bookkeeping schema (``SEGSYNC`` by default) of one warehouse connection."""

    def __init__(self, warehouse: Warehouse, schema: str) -> None:
        if not IDENTIFIER.match(schema):
            raise ConfigError(f"state_schema '{schema}' is not a plain identifier (letters, digits, _ and $)")
        self.warehouse = warehouse
        self.dialect = warehouse.dialect
        self._schema = schema
        self.state_table = self.dialect.table(schema, "SYNC_STATE")
        self.history_table = self.dialect.table(schema, "SYNC_RUNS")
        self.rejected_table = self.dialect.table(schema, "REJECTED_RECORDS")
        self.version_table = self.dialect.table(schema, "SCHEMA_VERSION")
        self.fence_table = self.dialect.table(schema, "RUN_FENCE")
        self._run_columns: dict[str, list[ModelColumn]] = {}

    def ensure(self) -> None:
        """Create the schema and shared tables on first use, or bring an older schema up to date (idempotent)."""
        self.warehouse.ensure_schema(self._schema)
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.version_table} (VERSION INTEGER, APPLIED_AT TIMESTAMP)"
        )
        version = self.warehouse.query(f"SELECT MAX(VERSION) FROM {self.version_table}")[0][0]
        if version == SCHEMA_VERSION:
            return
        legacy = version is None and self.exists(self.state_table)
        text = self.dialect.string_type
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.state_table} (SYNC {text}, DESTINATION {text}, ROW_KEY {text}, "
            f"ROW_HASH {text}, SYNCED_AT TIMESTAMP, KEY_FORMAT INTEGER, ROW_VALUES {text})"
        )
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.history_table} (SYNC {text}, RUN_ID {text}, STATUS {text}, "
            f"TRIGGER {text}, FULL_RESYNC BOOLEAN, STARTED_AT TIMESTAMP, FINISHED_AT TIMESTAMP, "
            "SOURCE_ROWS BIGINT, NEW_ROWS BIGINT, CHANGED_ROWS BIGINT, UNCHANGED_ROWS BIGINT, "
            f"REJECTED BIGINT, SENT BIGINT, COMMITTED BIGINT, ERROR {text}, REMOVED_ROWS BIGINT, BASELINE BOOLEAN)"
        )
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.rejected_table} (SYNC {text}, RUN_ID {text}, "
            f"ROW_KEY {text}, FIELD {text}, REASON {text}, REJECTED_AT TIMESTAMP, SOURCE {text})"
        )
        self.warehouse.execute(f"CREATE TABLE IF NOT EXISTS {self.fence_table} (SYNC {text}, RUN_ID {text})")
        if legacy:
            # Before versioning (segsync 0.1): state rows gain the key format that wrote them; theirs stays
            # NULL (format 1) until their sync's next run re-keys them (segsync.upgrade).
            self.warehouse.execute(f"ALTER TABLE {self.state_table} ADD COLUMN IF NOT EXISTS KEY_FORMAT INTEGER")
        if legacy or (version is not None and version < 3):
            # Version 3: a rejected record says which part of its run rejected it (a chunk, the planner).
            self.warehouse.execute(f"ALTER TABLE {self.rejected_table} ADD COLUMN IF NOT EXISTS SOURCE {text}")
        if legacy or (version is not None and version < 4):
            # Version 4: state keeps the values a removal is sent with; history counts removals and baselines.
            self._add_column(self.state_table, "ROW_VALUES", text)
            self._add_column(self.history_table, "REMOVED_ROWS", "BIGINT")
            self._add_column(self.history_table, "BASELINE", "BOOLEAN")
        self.warehouse.insert_rows(self.version_table, ["VERSION", "APPLIED_AT"], [(SCHEMA_VERSION, _now())])

    def delivered_to(self, sync_name: str, destination: str, alias: str = "") -> str:
        """The condition on state rows (under ``alias``) of one sync toward one destination: what it delivered."""
        d, at = self.dialect, f"{alias}." if alias else ""
        return f"{at}SYNC = {d.literal(sync_name)} AND {at}DESTINATION = {d.literal(destination)}"

    def run_table(self, sync_name: str, run_id: str) -> str:
        """Where a run's diff waits for its waves and checkpoints: one table per run, never shared."""
        run = re.sub(r"[^A-Za-z0-9]", "_", run_id).upper()
        return self.dialect.table(self._schema, f"RUN_{table_suffix(sync_name)}_{run}")

    def run_columns(self, sync_name: str, run_id: str) -> list[ModelColumn]:
        """A run table's model columns (after its bookkeeping ones), read once: a run table never changes shape,
        and every wave and checkpoint of a tick needs them."""
        table = self.run_table(sync_name, run_id)
        if table not in self._run_columns:
            self._run_columns[table] = self.warehouse.describe(f"SELECT * FROM {table}")[INTERNAL_COLUMNS:]
        return self._run_columns[table]

    def cursor_table(self, sync_name: str, destination: str) -> str:
        return self.dialect.table(self._schema, f"CURSOR_{table_suffix(sync_name + ' ' + destination)}")

    def model_columns(self, model: str) -> list[ModelColumn]:
        """The model's columns as the warehouse spells and types them, without reading its rows."""
        return self.warehouse.describe(f"SELECT * FROM (\n{nested(model)}\n) AS m")

    def keyed(self, sync: AnySync, columns: list[ModelColumn], source: str) -> str:
        """``source``'s rows (over the model's columns) with the key text, key count and row hash first.

        The key text is the dialect's canonical text of the key. The row hash covers the fingerprint of
        the mapping and the text of each column the mapping reads, encoded so that two different rows
        never share a hash input (``Dialect.row_hash``).
        """
        d = self.dialect
        names = [c.name for c in columns]
        find = column_index(names, sync.name)
        key = columns[find(sync.key, "key")]
        hashed = [columns[names.index(name)] for name in source_columns(sync, names)]
        row_hash = d.row_hash(
            d.literal(mapping_fingerprint(sync)), [d.hash_text("t." + d.quote(c.name), c.kind) for c in hashed]
        )
        return (
            f"WITH m AS ({source}),\n"
            f"t AS (SELECT m.*, {d.text('m.' + d.quote(key.name), key.kind)} AS {KEY} FROM m)\n"
            f"SELECT t.{KEY}, COUNT(*) OVER (PARTITION BY t.{KEY}) AS {KEY_COUNT}, {row_hash} AS {ROW_HASH}, "
            + ", ".join(f"t.{d.quote(c.name)}" for c in columns)
            + "\nFROM t"
        )

    def diff_statement(
        self, sync: AnySync, run_id: str, destination: str, columns: list[ModelColumn], *, full_resync: bool
    ) -> list[str]:
        """The run table: ``diff_query``'s rows, numbered, kept for the run's waves and checkpoints."""
        d, table = self.dialect, self.run_table(sync.name, run_id)
        query = self.diff_query(sync, destination, columns, full_resync=full_resync, seq=d.row_number())
        return d.create_table_as(table, query) + d.number_rows(table, SEQ)

    def diff_query(
        self,
        sync: AnySync,
        destination: str,
        columns: list[ModelColumn],
        *,
        full_resync: bool,
        seq: str = "NULL",
    ) -> str:
        """Every model row with its key, key count, hashes, change kind and ``seq`` (the SQL of its number: only the
        run table needs one, ``diff_statement``); reads state, writes nothing.

        Update or Create: new and changed rows go out. Append: only keys never delivered. A full
        resync ignores state. Rows with a null or repeated key are kept so they can be rejected by name.
        Where removals are sent (``segsync.changes.tracks_removals``), the keys state holds that the model no
        longer has are rows too (``removed``, their model columns NULL, the values last delivered kept), by a
        full outer join; the other syncs keep the cheaper left join.
        """
        d = self.dialect
        if full_resync:
            change = f"'{RESYNC}'"
        elif sync.behavior == "append":
            change = f"CASE WHEN s.ROW_KEY IS NULL THEN '{NEW}' ELSE '{UNCHANGED}' END"
        else:
            change = (
                f"CASE WHEN s.ROW_KEY IS NULL THEN '{NEW}' "
                f"WHEN s.ROW_HASH <> k.{ROW_HASH} THEN '{CHANGED}' ELSE '{UNCHANGED}' END"
            )
        cursor_filter = self._cursor_filter(sync, destination, columns, full_resync)
        model = f"SELECT * FROM (\n{nested(sync.sql)}\n) AS src{cursor_filter}"
        model_columns = ", ".join(f"k.{d.quote(c.name)}" for c in columns)
        ours = self.delivered_to(sync.name, destination, "s")
        if full_resync or not tracks_removals(sync):
            return (
                f"WITH k AS (\n{self.keyed(sync, columns, model)}\n)\n"
                f"SELECT k.{KEY}, k.{KEY_COUNT}, k.{ROW_HASH}, s.ROW_HASH AS {PREVIOUS_HASH}, {change} AS {CHANGE}, "
                f"{seq} AS {SEQ}, {d.cast_text('NULL')} AS {PREVIOUS_VALUES}, {model_columns}"
                f"\nFROM k LEFT JOIN {self.state_table} AS s ON {ours} AND s.ROW_KEY = k.{KEY}"
            )
        # Every model row has a key count (1 or more), so a row without one is a key only state has. Only
        # those need their values: carrying every row's would double the statement's work.
        values = f"CASE WHEN k.{KEY_COUNT} IS NULL THEN s.ROW_VALUES END" if keeps_values(sync) else "NULL"
        return (
            f"WITH k AS (\n{self.keyed(sync, columns, model)}\n)\n"
            f"SELECT COALESCE(k.{KEY}, s.ROW_KEY) AS {KEY}, COALESCE(k.{KEY_COUNT}, 1) AS {KEY_COUNT}, "
            f"k.{ROW_HASH}, s.ROW_HASH AS {PREVIOUS_HASH}, "
            f"CASE WHEN k.{KEY_COUNT} IS NULL THEN '{REMOVED}' ELSE {change} END AS {CHANGE}, "
            f"{seq} AS {SEQ}, {d.cast_text(values)} AS {PREVIOUS_VALUES}, {model_columns}"
            f"\nFROM k FULL OUTER JOIN (SELECT s.ROW_KEY, s.ROW_HASH, s.ROW_VALUES FROM {self.state_table} AS s "
            f"WHERE {ours}) AS s ON s.ROW_KEY = k.{KEY}"
        )

    def prepare(
        self, sync: AnySync, run_id: str, destination: str, columns: list[ModelColumn], *, full_resync: bool
    ) -> DiffCounts:
        """Materialize the run table (``diff_statement``) and count what it holds."""
        run_table = self.run_table(sync.name, run_id)
        self._run_columns.pop(run_table, None)
        self.warehouse.execute_all(self.diff_statement(sync, run_id, destination, columns, full_resync=full_resync))
        counts = dict.fromkeys((NEW, CHANGED, UNCHANGED, RESYNC, REMOVED, "null", "duplicate"), 0)
        for change_kind, bad, rows in self.warehouse.query(
            f"SELECT {CHANGE}, CASE WHEN {KEY} IS NULL THEN 'null' WHEN {KEY_COUNT} > 1 THEN 'duplicate' END, "
            f"COUNT(*) FROM {run_table} GROUP BY 1, 2"
        ):
            counts[bad or change_kind] += rows
        delivered = 0
        if tracks_removals(sync) and not full_resync:
            delivered = self.warehouse.query(
                f"SELECT COUNT(*) FROM {self.state_table} WHERE {self.delivered_to(sync.name, destination)}"
            )[0][0]
        return DiffCounts(
            source_rows=sum(counts.values()) - counts[REMOVED],
            new=counts[NEW] + counts[RESYNC],
            changed=counts[CHANGED],
            unchanged=counts[UNCHANGED],
            null_keys=counts["null"],
            duplicate_keys=counts["duplicate"],
            removed=counts[REMOVED],
            delivered=delivered,
            to_send=sum(counts[kind] for kind in sent_kinds(sync)),
        )

    def removed_query(self, sync: AnySync, destination: str, columns: list[ModelColumn]) -> str:
        """The keys delivered to ``destination`` that the model no longer has (a run sends nothing for them)."""
        model = f"SELECT * FROM (\n{nested(sync.sql)}\n) AS src"
        return (
            f"SELECT s.ROW_KEY FROM {self.state_table} AS s WHERE {self.delivered_to(sync.name, destination, 's')} "
            f"AND NOT EXISTS (SELECT 1 FROM (\n{self.keyed(sync, columns, model)}\n) AS k WHERE k.{KEY} = s.ROW_KEY)"
        )

    def wave_sql(self, sync: AnySync, run_id: str, after_seq: int, rows: int, through_seq: int | None = None) -> str:
        """The next ``rows`` rows to send after ``after_seq`` (up to ``through_seq``), in ``SEQ`` order (a wave).

        A ``through_seq`` bounds what the warehouse sorts to that span of the run table, whatever its size.
        """
        through = "" if through_seq is None else f" AND r.{SEQ} <= {int(through_seq)}"
        return (
            f"SELECT * FROM {self.run_table(sync.name, run_id)} AS r "
            f"WHERE r.{SEQ} > {int(after_seq)}{through} AND {_sendable('r', sent_kinds(sync))} "
            f"ORDER BY r.{SEQ} LIMIT {int(rows)}"
        )

    def last_seq(self, sync_name: str, run_id: str) -> int:
        """The run table's highest ``SEQ`` (0 when it is empty): where its waves end."""
        [(last,)] = self.warehouse.query(f"SELECT MAX({SEQ}) FROM {self.run_table(sync_name, run_id)}")
        return int(last or 0)

    def reject_bad_keys(self, sync: AnySync, run_id: str, detail_limit: int = REJECTION_DETAIL_LIMIT) -> None:
        """Record the rows whose key is null or shared, in SQL: a model of a million null keys never passes
        through the planner's memory. The first ``detail_limit`` rows are recorded one by one."""
        d = self.dialect
        before, after = DUPLICATE_KEY_REASON.split("{count}")
        reason = (
            f"CASE WHEN r.{KEY} IS NULL THEN {d.literal(NULL_KEY_REASON.format(column=sync.key))} "
            f"ELSE {d.literal(before)} || {d.cast_text(f'r.{KEY_COUNT}')} || {d.literal(after)} END"
        )
        self.warehouse.execute(
            f"INSERT INTO {self.rejected_table} ({', '.join(REJECTED_COLUMNS)}) "
            f"SELECT {d.literal(sync.name)}, {d.literal(run_id)}, r.{KEY}, 'key', {reason}, CURRENT_TIMESTAMP, "
            f"'planner' FROM {self.run_table(sync.name, run_id)} AS r "
            f"WHERE (r.{KEY} IS NULL OR r.{KEY_COUNT} > 1){self._fenced(sync.name, run_id)} "
            f"ORDER BY r.{SEQ} LIMIT {int(detail_limit)}"
        )

    def checkpoint(self, sync: AnySync, run_id: str, destination: str, first_seq: int, last_seq: int) -> int:
        """Merge the delivered rows numbered ``first_seq``..``last_seq`` into state; rejected rows stay out.

        A delivered removal takes its key out of state: the key is forgotten, and new again if it comes back.
        Idempotent (the same rows merge to the same hashes), and fenced: if another run holds the sync
        now, nothing is merged (the warehouse's own record of the run holding it, ``RUN_FENCE``).
        Returns how many rows it committed.
        """
        rows = f"r.{SEQ} BETWEEN {int(first_seq)} AND {int(last_seq)} AND {_sendable('r', sent_kinds(sync))}"
        return self._commit(sync, run_id, destination, rows)

    def settle(self, sync: AnySync, run_id: str, destination: str, kinds: tuple[str, ...]) -> int:
        """Record the run's rows of ``kinds`` in state as delivered, sending nothing: the kinds a sync sends no
        message for, or every kind in a baseline (``--mark-synced``). Rejected keys stay out; fenced like a
        checkpoint. Returns how many rows it committed."""
        if not kinds:
            return 0
        return self._commit(sync, run_id, destination, _sendable("r", kinds))

    def keep_values(self, sync: AnySync, run_id: str, destination: str) -> None:
        """Give the state rows that have no values kept (delivered before the sync sent removals) those of the
        model's unchanged rows: the same hash, so the same values as were delivered. Fenced.

        Only the run after a sync starts sending removals (or after an upgrade) finds any: the others pay one count.
        """
        if not keeps_values(sync):
            return
        d = self.dialect
        # Qualified: the source below names its own columns ROW_KEY and ROW_VALUES, and an engine that resolves
        # select-list aliases (fakesnow's rewriting, DuckDB) could bind a bare name to them.
        missing = (
            f"SELECT v.ROW_KEY FROM {self.state_table} AS v WHERE {self.delivered_to(sync.name, destination, 'v')} "
            "AND v.ROW_VALUES IS NULL"
        )
        if not self.warehouse.query(f"SELECT COUNT(*) FROM ({missing}) AS m")[0][0]:
            return
        self.warehouse.execute_all(
            d.merge(
                self.state_table,
                f"SELECT {d.literal(sync.name)} AS SYNC, {d.literal(destination)} AS DESTINATION, r.{KEY} AS ROW_KEY, "
                f"{self._row_values(sync, run_id)} AS ROW_VALUES FROM {self.run_table(sync.name, run_id)} AS r "
                f"WHERE r.{CHANGE} = '{UNCHANGED}' AND r.{KEY_COUNT} = 1 "
                f"AND r.{KEY} IN ({missing}){self._fenced(sync.name, run_id)}",
                on=["SYNC", "DESTINATION", "ROW_KEY"],
                update={"ROW_VALUES": "d.ROW_VALUES"},
            )
        )

    def _commit(self, sync: AnySync, run_id: str, destination: str, rows: str) -> int:
        """Move state forward for the run table's ``rows`` (a condition on ``r``) that were not rejected: merge
        new and changed rows (with their values where state keeps them), delete removed keys."""
        d = self.dialect
        delivered = (
            f"FROM {self.run_table(sync.name, run_id)} AS r WHERE {rows} AND r.{KEY} NOT IN "
            f"(SELECT ROW_KEY FROM {self.rejected_table} WHERE SYNC = {d.literal(sync.name)} "
            f"AND RUN_ID = {d.literal(run_id)} AND ROW_KEY IS NOT NULL){self._fenced(sync.name, run_id)}"
        )
        committed = self.warehouse.query(f"SELECT COUNT(*) {delivered}")[0][0]
        kept = keeps_values(sync)
        update = {"ROW_HASH": "d.ROW_HASH", "SYNCED_AT": "CURRENT_TIMESTAMP", "KEY_FORMAT": str(KEY_FORMAT)}
        insert = {
            "SYNC": "d.SYNC",
            "DESTINATION": "d.DESTINATION",
            "ROW_KEY": "d.ROW_KEY",
            "ROW_HASH": "d.ROW_HASH",
            "SYNCED_AT": "CURRENT_TIMESTAMP",
            "KEY_FORMAT": str(KEY_FORMAT),
        }
        if kept:
            update["ROW_VALUES"] = insert["ROW_VALUES"] = "d.ROW_VALUES"
        values = f", {self._row_values(sync, run_id)} AS ROW_VALUES" if kept else ""
        merged = f"{delivered} AND r.{CHANGE} <> '{REMOVED}'" if tracks_removals(sync) else delivered
        self.warehouse.execute_all(
            d.merge(
                self.state_table,
                f"SELECT {d.literal(sync.name)} AS SYNC, {d.literal(destination)} AS DESTINATION, "
                f"r.{KEY} AS ROW_KEY, r.{ROW_HASH} AS ROW_HASH{values} {merged}",
                on=["SYNC", "DESTINATION", "ROW_KEY"],
                update=update,
                insert=insert,
            )
        )
        if tracks_removals(sync):
            self.warehouse.execute(
                f"DELETE FROM {self.state_table} WHERE {self.delivered_to(sync.name, destination)} "
                f"AND ROW_KEY IN (SELECT r.{KEY} {delivered} AND r.{CHANGE} = '{REMOVED}')"
            )
        return int(committed)

    def _row_values(self, sync: AnySync, run_id: str) -> str:
        """SQL for a run table row's values as state keeps them (``ROW_VALUES``): a JSON object of the canonical
        text (``Dialect.text``) of each column the mapping reads, by name.

        The columns the mapping reads are the row hash's, so a removal is mapped by the same Mapper from what
        was delivered; their canonical texts are the one text of each value, whatever the session, and
        ``segsync.changes.from_text`` reads them back as the driver would have given them.
        """
        columns = self.run_columns(sync.name, run_id)
        read = set(source_columns(sync, [c.name for c in columns]))
        d = self.dialect
        return d.json_object([(c.name, d.text("r." + d.quote(c.name), c.kind)) for c in columns if c.name in read])

    def record_rejections(self, sync_name: str, run_id: str, source: str, rejections: list[dict[str, Any]]) -> None:
        """Write the rejected records of one part of a run (a chunk, the planner's rows), replacing an earlier
        copy of that part, where analysts can query them."""
        d = self.dialect
        self.warehouse.execute(
            f"DELETE FROM {self.rejected_table} WHERE SYNC = {d.literal(sync_name)} "
            f"AND RUN_ID = {d.literal(run_id)} AND SOURCE = {d.literal(source)}"
        )
        now = _now()
        self.warehouse.insert_rows(
            self.rejected_table,
            list(REJECTED_COLUMNS),
            [(sync_name, run_id, r.get("row_key"), r["field"], r["reason"], now, source) for r in rejections],
        )

    def fence(self, sync_name: str, run_id: str) -> None:
        """Say in the warehouse which run holds the sync now: a run that lost it can merge nothing more."""
        d = self.dialect
        self.warehouse.execute(f"DELETE FROM {self.fence_table} WHERE SYNC = {d.literal(sync_name)}")
        self.warehouse.insert_rows(self.fence_table, ["SYNC", "RUN_ID"], [(sync_name, run_id)])

    def _fenced(self, sync_name: str, run_id: str) -> str:
        d = self.dialect
        return (
            f" AND EXISTS (SELECT 1 FROM {self.fence_table} AS f WHERE f.SYNC = {d.literal(sync_name)} "
            f"AND f.RUN_ID = {d.literal(run_id)})"
        )

    def record_history(self, run: dict[str, Any]) -> None:
        """One row per run in ``SYNC_RUNS`` (replacing an earlier row of the same run)."""
        self.warehouse.execute(f"DELETE FROM {self.history_table} WHERE RUN_ID = {self.dialect.literal(run['run_id'])}")
        final = run["status"] in FINAL_STATUSES
        values = (
            run["sync"], run["run_id"], run["status"], run.get("trigger"), bool(run.get("full_resync")),
            _timestamp(run.get("started_at")), (_timestamp(run.get("finished_at")) or _now()) if final else None,
            run.get("rows_read", 0), run.get("new", 0), run.get("changed", 0), run.get("unchanged", 0),
            run.get("rejected_planner", 0) + run.get("rejected_sender", 0), run.get("sent", 0),
            run.get("committed", 0), run.get("error") or run.get("last_error"), run.get("removed", 0),
            bool(run.get("mark_synced")),
        )  # fmt: skip
        self.warehouse.insert_rows(self.history_table, list(HISTORY_COLUMNS), [values])

    def unfinished_runs(self, sync_name: str, current: str) -> list[str]:
        """Runs of the sync the warehouse saw start but never end (a planner or a local stack that died),
        other than ``current``: whoever holds the sync's lock may close them."""
        rows = self.warehouse.query(
            f"SELECT RUN_ID FROM {self.history_table} WHERE SYNC = {self.dialect.literal(sync_name)} "
            f"AND RUN_ID <> {self.dialect.literal(current)} "
            f"AND STATUS NOT IN ({', '.join(self.dialect.literal(s) for s in FINAL_STATUSES)})"
        )
        return [row[0] for row in rows]

    def close_unfinished(self, sync_name: str, run_id: str, reason: str) -> None:
        """Mark a run that never ended abandoned in the history, and drop its run table."""
        d = self.dialect
        self.warehouse.execute(
            f"UPDATE {self.history_table} SET STATUS = 'abandoned', FINISHED_AT = CURRENT_TIMESTAMP, "
            f"ERROR = {d.literal(reason)} WHERE SYNC = {d.literal(sync_name)} AND RUN_ID = {d.literal(run_id)}"
        )
        self.drop_run(sync_name, run_id)

    def drop_run(self, sync_name: str, run_id: str) -> None:
        table = self.run_table(sync_name, run_id)
        self._run_columns.pop(table, None)
        self.warehouse.execute(f"DROP TABLE IF EXISTS {table}")

    def history(self, sync_name: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs of a sync, from the warehouse's own record."""
        rows = self.warehouse.query(
            f"SELECT {', '.join(HISTORY_COLUMNS)} FROM {self.history_table} "
            f"WHERE SYNC = {self.dialect.literal(sync_name)} ORDER BY RUN_ID DESC LIMIT {int(limit)}"
        )
        return [dict(zip((c.lower() for c in HISTORY_COLUMNS), row, strict=True)) for row in rows]

    def rejected(self, sync_name: str, run_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rejected records of a sync (its latest run's, or one run's)."""
        name = self.dialect.literal(sync_name)
        run_filter = (
            f"RUN_ID = {self.dialect.literal(run_id)}"
            if run_id
            else f"RUN_ID = (SELECT MAX(RUN_ID) FROM {self.rejected_table} WHERE SYNC = {name})"
        )
        rows = self.warehouse.query(
            f"SELECT {', '.join(REJECTED_COLUMNS)} FROM {self.rejected_table} "
            f"WHERE SYNC = {name} AND {run_filter} ORDER BY ROW_KEY LIMIT {int(limit)}"
        )
        return [dict(zip((c.lower() for c in REJECTED_COLUMNS), row, strict=True)) for row in rows]

    def _cursor_filter(self, sync: AnySync, destination: str, columns: list[ModelColumn], full_resync: bool) -> str:
        """Append syncs with a cursor column scan only rows at or past the watermark (and null cursors)."""
        if (
            full_resync
            or not isinstance(sync, TrackSync)
            or not sync.cursor
            or not self.exists(self.cursor_table(sync.name, destination))
        ):
            return ""
        column = f"src.{self.column(sync.cursor, columns, sync.name, 'cursor')}"
        mark = self._watermark(self.cursor_table(sync.name, destination))
        return f"\nWHERE {mark} IS NULL OR {column} IS NULL OR {column} >= {mark}"

    def advance_cursor(self, sync: AnySync, run_id: str, destination: str) -> None:
        """Move a Track sync's watermark to the newest delivered event, but never past an undelivered one.

        Watermarks are appended per run; the table is created from a query (once) so it keeps the
        cursor column's own type, whatever it is, in every dialect.
        """
        if not isinstance(sync, TrackSync) or not sync.cursor:
            return
        cursor = sync.cursor
        d = self.dialect
        run_table = self.run_table(sync.name, run_id)
        cursor_table = self.cursor_table(sync.name, destination)
        column = self.column(cursor, self.warehouse.describe(f"SELECT * FROM {run_table}"), sync.name, "cursor")
        if not self.exists(cursor_table):
            self.warehouse.execute_all(
                d.create_table_as(
                    cursor_table,
                    f"SELECT {d.cast_text(d.literal(''))} AS RUN_ID, r.{column} AS WATERMARK "
                    f"FROM {run_table} AS r WHERE 1 = 0",
                )
            )
        held_back = (
            f"r.{KEY} IS NULL OR r.{KEY_COUNT} > 1 OR r.{KEY} IN (SELECT ROW_KEY FROM {self.rejected_table} "
            f"WHERE SYNC = {d.literal(sync.name)} AND RUN_ID = {d.literal(run_id)})"
        )
        self.warehouse.execute(
            f"INSERT INTO {cursor_table} (RUN_ID, WATERMARK) SELECT {d.literal(run_id)}, COALESCE("
            f"(SELECT MIN(r.{column}) FROM {run_table} AS r WHERE {held_back}), "
            f"(SELECT MAX(r.{column}) FROM {run_table} AS r), {self._watermark(cursor_table)})"
        )

    @staticmethod
    def _watermark(cursor_table: str) -> str:
        """The latest watermark as a scalar subquery (run ids sort by time)."""
        return f"(SELECT WATERMARK FROM {cursor_table} ORDER BY RUN_ID DESC LIMIT 1)"

    def _add_column(self, table: str, column: str, type_: str) -> None:
        """Add a column to a bookkeeping table unless it has it (not every engine has ``IF NOT EXISTS`` there)."""
        if column not in {c.name.upper() for c in self.warehouse.describe(f"SELECT * FROM {table}")}:
            self.warehouse.execute(self.dialect.add_column(table, column, type_))

    def exists(self, table: str) -> bool:
        """Whether a bookkeeping table (``SCHEMA.NAME``) exists yet."""
        schema, name = table.split(".")
        return bool(self.warehouse.query(self.dialect.table_exists(schema, name)))

    def column(self, column: str, columns: list[ModelColumn], sync_name: str, field: str) -> str:
        """A configured column quoted as the warehouse spells it (the mapper's lookup: exact, else
        case-insensitive, since Snowflake upper-cases unquoted names); ConfigError names a missing one."""
        names = [c.name for c in columns]
        return self.dialect.quote(names[column_index(names, sync_name)(column, field)])


def _sendable(alias: str, kinds: tuple[str, ...]) -> str:
    """Rows of a run table of ``kinds`` (those a run sends, or settles) with a key of their own."""
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    return f"{alias}.{CHANGE} IN ({listed}) AND {alias}.{KEY} IS NOT NULL AND {alias}.{KEY_COUNT} = 1"


def nested(model: str) -> str:
    """The model ready to nest as a subquery: trailing semicolons dropped.

    Callers wrap it in parentheses on their own lines, so a trailing "-- comment" cannot swallow them.
    """
    body = model.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _timestamp(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None)

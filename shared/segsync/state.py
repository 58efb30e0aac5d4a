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
INTERNAL_COLUMNS = 5
"""A run table's first columns are segsync's (key text, key count, row hash, the hash delivered last, change);
the model's follow."""
KEYED_COLUMNS = 3
"""``keyed`` rows start with the key text, key count and row hash; the model's columns follow."""

KEY_FORMAT = 2
"""State rows written with canonical key texts and length-prefixed row hashes (format 1: see segsync.upgrade)."""
SCHEMA_VERSION = 2
"""The bookkeeping schema's shape; ``ensure`` brings an older one up to it."""
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
HISTORY_COLUMNS = (
    "SYNC", "RUN_ID", "STATUS", "TRIGGER", "FULL_RESYNC", "STARTED_AT", "FINISHED_AT", "SOURCE_ROWS",
    "NEW_ROWS", "CHANGED_ROWS", "UNCHANGED_ROWS", "REJECTED", "SENT", "COMMITTED", "ERROR",
)  # fmt: skip
REJECTED_COLUMNS = ("SYNC", "RUN_ID", "ROW_KEY", "FIELD", "REASON", "REJECTED_AT")


@dataclass(frozen=True)
class DiffCounts:
    """How the model compares with what was delivered before."""

    source_rows: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    bad_keys: int = 0


def destination_id(destination: SegmentConnection) -> str:
    """Which Segment source state belongs to: pointing a sync at another one sends everything there.

    The API base and where the write key comes from (never the key itself).
    """
    key = destination.write_key
    return f"{destination.api_base} ({'env ' + key.env if key.env else 'secret ' + str(key.secret)})"


def table_suffix(sync_name: str) -> str:
    """A sync's tables: readable, unquoted-safe in both dialects, and distinct for every sync name."""
    digest = hashlib.blake2b(sync_name.encode(), digest_size=3).hexdigest().upper()
    return re.sub(r"[^A-Za-z0-9]", "_", sync_name).upper() + "_" + digest


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

    def ensure(self) -> None:
        """Create the schema and shared tables on first use, or bring an older schema up to date (idempotent)."""
        self.warehouse.ensure_schema(self._schema)
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.version_table} (VERSION INTEGER, APPLIED_AT TIMESTAMP)"
        )
        version = self.warehouse.query(f"SELECT MAX(VERSION) FROM {self.version_table}")[0][0]
        if version == SCHEMA_VERSION:
            return
        legacy = version is None and self._exists(self.state_table)
        text = self.dialect.string_type
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.state_table} (SYNC {text}, DESTINATION {text}, ROW_KEY {text}, "
            f"ROW_HASH {text}, SYNCED_AT TIMESTAMP, KEY_FORMAT INTEGER)"
        )
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.history_table} (SYNC {text}, RUN_ID {text}, STATUS {text}, "
            f"TRIGGER {text}, FULL_RESYNC BOOLEAN, STARTED_AT TIMESTAMP, FINISHED_AT TIMESTAMP, "
            "SOURCE_ROWS BIGINT, NEW_ROWS BIGINT, CHANGED_ROWS BIGINT, UNCHANGED_ROWS BIGINT, "
            f"REJECTED BIGINT, SENT BIGINT, COMMITTED BIGINT, ERROR {text})"
        )
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.rejected_table} (SYNC {text}, RUN_ID {text}, "
            f"ROW_KEY {text}, FIELD {text}, REASON {text}, REJECTED_AT TIMESTAMP)"
        )
        if legacy:
            # Before versioning (segsync 0.1): state rows gain the key format that wrote them; theirs stays
            # NULL (format 1) until their sync's next run re-keys them (segsync.upgrade).
            self.warehouse.execute(f"ALTER TABLE {self.state_table} ADD COLUMN IF NOT EXISTS KEY_FORMAT INTEGER")
        self.warehouse.insert_rows(self.version_table, ["VERSION", "APPLIED_AT"], [(SCHEMA_VERSION, _now())])

    def run_table(self, sync_name: str) -> str:
        """Where a run's diff waits for finalize; one per sync, since a sync runs once at a time."""
        return self.dialect.table(self._schema, f"RUN_{table_suffix(sync_name)}")

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
        self, sync: AnySync, destination: str, columns: list[ModelColumn], *, full_resync: bool
    ) -> list[str]:
        """The run table: every model row with its key, key count, hashes and change kind.

        Update or Create: new and changed rows go out. Append: only keys never delivered. A full
        resync ignores state. Rows with a null or repeated key are kept so the planner can reject
        them by name.
        """
        d = self.dialect
        if full_resync:
            change = "'resync'"
        elif sync.behavior == "append":
            change = "CASE WHEN s.ROW_KEY IS NULL THEN 'new' ELSE 'unchanged' END"
        else:
            change = (
                "CASE WHEN s.ROW_KEY IS NULL THEN 'new' "
                f"WHEN s.ROW_HASH <> k.{ROW_HASH} THEN 'changed' ELSE 'unchanged' END"
            )
        cursor_filter = self._cursor_filter(sync, destination, columns, full_resync)
        model = f"SELECT * FROM (\n{nested(sync.sql)}\n) AS src{cursor_filter}"
        return d.create_table_as(
            self.run_table(sync.name),
            f"WITH k AS (\n{self.keyed(sync, columns, model)}\n)\n"
            f"SELECT k.{KEY}, k.{KEY_COUNT}, k.{ROW_HASH}, s.ROW_HASH AS {PREVIOUS_HASH}, {change} AS {CHANGE}, "
            + ", ".join(f"k.{d.quote(c.name)}" for c in columns)
            + f"\nFROM k LEFT JOIN {self.state_table} AS s ON s.SYNC = {d.literal(sync.name)} "
            f"AND s.DESTINATION = {d.literal(destination)} AND s.ROW_KEY = k.{KEY}",
        )

    def prepare(self, sync: AnySync, destination: str, columns: list[ModelColumn], *, full_resync: bool) -> DiffCounts:
        """Materialize the run table (``diff_statement``) and count what it holds."""
        self.warehouse.execute_all(self.diff_statement(sync, destination, columns, full_resync=full_resync))
        counts = dict.fromkeys(("new", "changed", "unchanged", "resync", "bad"), 0)
        for change_kind, bad, rows in self.warehouse.query(
            f"SELECT {CHANGE}, CASE WHEN {KEY} IS NULL OR {KEY_COUNT} > 1 THEN 1 ELSE 0 END, COUNT(*) "
            f"FROM {self.run_table(sync.name)} GROUP BY 1, 2"
        ):
            counts["bad" if bad else change_kind] += rows
        total = sum(counts.values())
        return DiffCounts(
            source_rows=total,
            new=counts["new"] + counts["resync"],
            changed=counts["changed"],
            unchanged=counts["unchanged"],
            bad_keys=counts["bad"],
        )

    def changed_rows_sql(self, sync_name: str) -> str:
        """The rows to send, and the bad keys to reject (in no particular order: a sort would cost
        the warehouse memory and buy nothing, since finalize commits a run only when all of it is done)."""
        return (
            f"SELECT * FROM {self.run_table(sync_name)} "
            f"WHERE {CHANGE} <> 'unchanged' OR {KEY} IS NULL OR {KEY_COUNT} > 1"
        )

    def commit(self, sync: AnySync, destination: str, run_id: str, rejections: list[dict[str, Any]]) -> int:
        """Merge the delivered rows of a finished run into state; rejected rows stay out, to be retried.

        Idempotent: a finalize that died half way runs again to the same result.
        """
        d = self.dialect
        self.record_rejections(sync.name, run_id, rejections)
        run_table = self.run_table(sync.name)
        delivered = (
            f"FROM {run_table} AS r WHERE r.{CHANGE} <> 'unchanged' AND r.{KEY} IS NOT NULL AND r.{KEY_COUNT} = 1 "
            f"AND r.{KEY} NOT IN (SELECT ROW_KEY FROM {self.rejected_table} WHERE SYNC = {d.literal(sync.name)} "
            f"AND RUN_ID = {d.literal(run_id)} AND ROW_KEY IS NOT NULL)"
        )
        committed = self.warehouse.query(f"SELECT COUNT(*) {delivered}")[0][0]
        self.warehouse.execute_all(
            d.merge(
                self.state_table,
                f"SELECT {d.literal(sync.name)} AS SYNC, {d.literal(destination)} AS DESTINATION, "
                f"r.{KEY} AS ROW_KEY, r.{ROW_HASH} AS ROW_HASH {delivered}",
                on=["SYNC", "DESTINATION", "ROW_KEY"],
                update={"ROW_HASH": "d.ROW_HASH", "SYNCED_AT": "CURRENT_TIMESTAMP", "KEY_FORMAT": str(KEY_FORMAT)},
                insert={
                    "SYNC": "d.SYNC",
                    "DESTINATION": "d.DESTINATION",
                    "ROW_KEY": "d.ROW_KEY",
                    "ROW_HASH": "d.ROW_HASH",
                    "SYNCED_AT": "CURRENT_TIMESTAMP",
                    "KEY_FORMAT": str(KEY_FORMAT),
                },
            )
        )
        if isinstance(sync, TrackSync) and sync.cursor:
            self._advance_cursor(sync, destination, sync.cursor, run_id)
        return int(committed)

    def record_rejections(self, sync_name: str, run_id: str, rejections: list[dict[str, Any]]) -> None:
        """Write a run's rejected records where analysts can query them (replacing any earlier copy)."""
        d = self.dialect
        self.warehouse.execute(
            f"DELETE FROM {self.rejected_table} WHERE SYNC = {d.literal(sync_name)} AND RUN_ID = {d.literal(run_id)}"
        )
        now = _now()
        self.warehouse.insert_rows(
            self.rejected_table,
            list(REJECTED_COLUMNS),
            [(sync_name, run_id, r.get("row_key"), r["field"], r["reason"], now) for r in rejections],
        )

    def record_history(self, run: dict[str, Any]) -> None:
        """One row per run in ``SYNC_RUNS`` (replacing an earlier row of the same run)."""
        self.warehouse.execute(f"DELETE FROM {self.history_table} WHERE RUN_ID = {self.dialect.literal(run['run_id'])}")
        values = (
            run["sync"], run["run_id"], run["status"], run.get("trigger"), bool(run.get("full_resync")),
            _timestamp(run.get("started_at")), _timestamp(run.get("finished_at")) or _now(),
            run.get("rows_read", 0), run.get("new", 0), run.get("changed", 0), run.get("unchanged", 0),
            run.get("rejected_planner", 0) + run.get("rejected_sender", 0), run.get("sent", 0),
            run.get("committed", 0), run.get("error") or run.get("last_error"),
        )  # fmt: skip
        self.warehouse.insert_rows(self.history_table, list(HISTORY_COLUMNS), [values])

    def drop_run(self, sync_name: str) -> None:
        self.warehouse.execute(f"DROP TABLE IF EXISTS {self.run_table(sync_name)}")

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
            or not self._exists(self.cursor_table(sync.name, destination))
        ):
            return ""
        column = f"src.{self.column(sync.cursor, columns, sync.name, 'cursor')}"
        mark = self._watermark(self.cursor_table(sync.name, destination))
        return f"\nWHERE {mark} IS NULL OR {column} IS NULL OR {column} >= {mark}"

    def _advance_cursor(self, sync: TrackSync, destination: str, cursor: str, run_id: str) -> None:
        """Move the watermark to the newest delivered event, but never past an undelivered one.

        Watermarks are appended per run; the table is created from a query (once) so it keeps the
        cursor column's own type, whatever it is, in every dialect.
        """
        d = self.dialect
        run_table = self.run_table(sync.name)
        cursor_table = self.cursor_table(sync.name, destination)
        column = self.column(cursor, self.warehouse.describe(f"SELECT * FROM {run_table}"), sync.name, "cursor")
        if not self._exists(cursor_table):
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

    def _exists(self, table: str) -> bool:
        schema, name = table.split(".")
        return bool(self.warehouse.query(self.dialect.table_exists(schema, name)))

    def column(self, column: str, columns: list[ModelColumn], sync_name: str, field: str) -> str:
        """A configured column quoted as the warehouse spells it (the mapper's lookup: exact, else
        case-insensitive, since Snowflake upper-cases unquoted names); ConfigError names a missing one."""
        names = [c.name for c in columns]
        return self.dialect.quote(names[column_index(names, sync_name)(column, field)])


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

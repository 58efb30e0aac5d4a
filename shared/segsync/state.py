"""Incremental state in the warehouse: what was delivered, the diff that finds what changed, run history.

The diff is one SQL statement the warehouse runs (it scales there, not in a Lambda). Every statement
here is written once for DuckDB and Snowflake alike; adapters carry only what truly differs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from segsync.config import SegmentConnection, TrackSync, UserSync
from segsync.mapping import column_index, mapping_fingerprint, source_columns
from segsync.warehouse import Warehouse

KEY = "__segsync_key"
KEY_COUNT = "__segsync_key_count"
ROW_HASH = "__segsync_row_hash"
CHANGE = "__segsync_change"
INTERNAL_COLUMNS = 4
"""A run table's first columns are segsync's (key as text, key count, row hash, change); the model's follow."""

NULL_MARK = "'<segsync:null>'"
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


def quote(identifier: str) -> str:
    """Quote a column name exactly as the warehouse reported it (Snowflake keeps its case)."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal (for names and ids segsync controls; row values are always bound)."""
    return "'" + text.replace("'", "''") + "'"


def table_suffix(sync_name: str) -> str:
    """A sync's tables: readable, unquoted-safe in both dialects, and distinct for every sync name."""
    digest = hashlib.blake2b(sync_name.encode(), digest_size=3).hexdigest().upper()
    return re.sub(r"[^A-Za-z0-9]", "_", sync_name).upper() + "_" + digest


class WarehouseState:
    """The bookkeeping schema (``SEGSYNC`` by default) of one warehouse connection."""

    def __init__(self, warehouse: Warehouse, schema: str) -> None:
        self.warehouse = warehouse
        self._schema = schema
        self.state_table = f"{schema}.SYNC_STATE"
        self.history_table = f"{schema}.SYNC_RUNS"
        self.rejected_table = f"{schema}.REJECTED_RECORDS"

    def ensure(self) -> None:
        """Create the schema and shared tables on first use (idempotent)."""
        self.warehouse.ensure_schema(self._schema)
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.state_table} "
            "(SYNC VARCHAR, DESTINATION VARCHAR, ROW_KEY VARCHAR, ROW_HASH VARCHAR, SYNCED_AT TIMESTAMP)"
        )
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.history_table} (SYNC VARCHAR, RUN_ID VARCHAR, STATUS VARCHAR, "
            "TRIGGER VARCHAR, FULL_RESYNC BOOLEAN, STARTED_AT TIMESTAMP, FINISHED_AT TIMESTAMP, "
            "SOURCE_ROWS BIGINT, NEW_ROWS BIGINT, CHANGED_ROWS BIGINT, UNCHANGED_ROWS BIGINT, "
            "REJECTED BIGINT, SENT BIGINT, COMMITTED BIGINT, ERROR VARCHAR)"
        )
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {self.rejected_table} (SYNC VARCHAR, RUN_ID VARCHAR, "
            "ROW_KEY VARCHAR, FIELD VARCHAR, REASON VARCHAR, REJECTED_AT TIMESTAMP)"
        )

    def run_table(self, sync_name: str) -> str:
        """Where a run's diff waits for finalize; one per sync, since a sync runs once at a time."""
        return f"{self._schema}.RUN_{table_suffix(sync_name)}"

    def cursor_table(self, sync_name: str, destination: str) -> str:
        return f"{self._schema}.CURSOR_{table_suffix(sync_name + ' ' + destination)}"

    def model_columns(self, model: str) -> list[str]:
        """The model's column names, as the warehouse spells them, without reading its rows."""
        return self.warehouse.describe(f"SELECT * FROM (\n{nested(model)}\n) AS m")

    def prepare(
        self, sync: UserSync | TrackSync, destination: str, columns: list[str], *, full_resync: bool
    ) -> DiffCounts:
        """Materialize the run table: every model row with its key, key count, hash and change kind.

        Update or Create: new and changed rows go out. Append: only keys never delivered. A full
        resync ignores state. Rows with a null or repeated key are kept so the planner can reject
        them by name.
        """
        key = _column(sync.key, columns, sync.name, "key")
        hashed = ", ".join(
            f"COALESCE(CAST(m.{quote(c)} AS VARCHAR), {NULL_MARK})" for c in source_columns(sync, columns)
        )
        row_hash = f"MD5(CONCAT_WS(CHR(31), {literal(mapping_fingerprint(sync))}, {hashed}))"
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
        self.warehouse.execute(
            f"CREATE OR REPLACE TABLE {self.run_table(sync.name)} AS\n"
            f"WITH m AS ({model}),\n"
            f"k AS (SELECT {key_columns(key)}, "
            f"{row_hash} AS {ROW_HASH}, m.* FROM m)\n"
            f"SELECT k.{KEY}, k.{KEY_COUNT}, k.{ROW_HASH}, {change} AS {CHANGE}, "
            + ", ".join(f"k.{quote(c)}" for c in columns)
            + f"\nFROM k LEFT JOIN {self.state_table} AS s "
            f"ON s.SYNC = {literal(sync.name)} AND s.DESTINATION = {literal(destination)} AND s.ROW_KEY = k.{KEY}"
        )
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

    def commit(
        self, sync: UserSync | TrackSync, destination: str, run_id: str, rejections: list[dict[str, Any]]
    ) -> int:
        """Merge the delivered rows of a finished run into state; rejected rows stay out, to be retried.

        Idempotent: a finalize that died half way runs again to the same result.
        """
        self.record_rejections(sync.name, run_id, rejections)
        run_table = self.run_table(sync.name)
        delivered = (
            f"FROM {run_table} AS r WHERE r.{CHANGE} <> 'unchanged' AND r.{KEY} IS NOT NULL AND r.{KEY_COUNT} = 1 "
            f"AND r.{KEY} NOT IN (SELECT ROW_KEY FROM {self.rejected_table} WHERE SYNC = {literal(sync.name)} "
            f"AND RUN_ID = {literal(run_id)} AND ROW_KEY IS NOT NULL)"
        )
        committed = self.warehouse.query(f"SELECT COUNT(*) {delivered}")[0][0]
        self.warehouse.execute(
            f"MERGE INTO {self.state_table} AS s USING (\n"
            f"SELECT {literal(sync.name)} AS SYNC, {literal(destination)} AS DESTINATION, r.{KEY} AS ROW_KEY, "
            f"r.{ROW_HASH} AS ROW_HASH {delivered}\n"
            ") AS d ON s.SYNC = d.SYNC AND s.DESTINATION = d.DESTINATION AND s.ROW_KEY = d.ROW_KEY\n"
            "WHEN MATCHED THEN UPDATE SET ROW_HASH = d.ROW_HASH, SYNCED_AT = CURRENT_TIMESTAMP\n"
            "WHEN NOT MATCHED THEN INSERT (SYNC, DESTINATION, ROW_KEY, ROW_HASH, SYNCED_AT) "
            "VALUES (d.SYNC, d.DESTINATION, d.ROW_KEY, d.ROW_HASH, CURRENT_TIMESTAMP)"
        )
        if isinstance(sync, TrackSync) and sync.cursor:
            self._advance_cursor(sync, destination, sync.cursor, run_id)
        return int(committed)

    def record_rejections(self, sync_name: str, run_id: str, rejections: list[dict[str, Any]]) -> None:
        """Write a run's rejected records where analysts can query them (replacing any earlier copy)."""
        self.warehouse.execute(
            f"DELETE FROM {self.rejected_table} WHERE SYNC = {literal(sync_name)} AND RUN_ID = {literal(run_id)}"
        )
        now = _now()
        self.warehouse.insert_rows(
            self.rejected_table,
            list(REJECTED_COLUMNS),
            [(sync_name, run_id, r.get("row_key"), r["field"], r["reason"], now) for r in rejections],
        )

    def record_history(self, run: dict[str, Any]) -> None:
        """One row per run in ``SYNC_RUNS`` (replacing an earlier row of the same run)."""
        self.warehouse.execute(f"DELETE FROM {self.history_table} WHERE RUN_ID = {literal(run['run_id'])}")
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
            f"SELECT {', '.join(HISTORY_COLUMNS)} FROM {self.history_table} WHERE SYNC = {literal(sync_name)} "
            f"ORDER BY RUN_ID DESC LIMIT {int(limit)}"
        )
        return [dict(zip((c.lower() for c in HISTORY_COLUMNS), row, strict=True)) for row in rows]

    def rejected(self, sync_name: str, run_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rejected records of a sync (its latest run's, or one run's)."""
        run_filter = (
            f"RUN_ID = {literal(run_id)}"
            if run_id
            else f"RUN_ID = (SELECT MAX(RUN_ID) FROM {self.rejected_table} WHERE SYNC = {literal(sync_name)})"
        )
        rows = self.warehouse.query(
            f"SELECT {', '.join(REJECTED_COLUMNS)} FROM {self.rejected_table} "
            f"WHERE SYNC = {literal(sync_name)} AND {run_filter} ORDER BY ROW_KEY LIMIT {int(limit)}"
        )
        return [dict(zip((c.lower() for c in REJECTED_COLUMNS), row, strict=True)) for row in rows]

    def _cursor_filter(
        self, sync: UserSync | TrackSync, destination: str, columns: list[str], full_resync: bool
    ) -> str:
        """Append syncs with a cursor column scan only rows at or past the watermark (and null cursors)."""
        if (
            full_resync
            or not isinstance(sync, TrackSync)
            or not sync.cursor
            or not self._exists(self.cursor_table(sync.name, destination))
        ):
            return ""
        column = f"src.{_column(sync.cursor, columns, sync.name, 'cursor')}"
        mark = self._watermark(self.cursor_table(sync.name, destination))
        return f"\nWHERE {mark} IS NULL OR {column} IS NULL OR {column} >= {mark}"

    def _advance_cursor(self, sync: TrackSync, destination: str, cursor: str, run_id: str) -> None:
        """Move the watermark to the newest delivered event, but never past an undelivered one.

        Watermarks are appended per run; the table is created by ``CREATE TABLE AS`` so it keeps the
        cursor column's own type, whatever it is, in both dialects.
        """
        run_table = self.run_table(sync.name)
        cursor_table = self.cursor_table(sync.name, destination)
        column = _column(cursor, self.warehouse.describe(f"SELECT * FROM {run_table}"), sync.name, "cursor")
        self.warehouse.execute(
            f"CREATE TABLE IF NOT EXISTS {cursor_table} AS "
            f"SELECT CAST('' AS VARCHAR) AS RUN_ID, r.{column} AS WATERMARK FROM {run_table} AS r WHERE 1 = 0"
        )
        held_back = (
            f"r.{KEY} IS NULL OR r.{KEY_COUNT} > 1 OR r.{KEY} IN (SELECT ROW_KEY FROM {self.rejected_table} "
            f"WHERE SYNC = {literal(sync.name)} AND RUN_ID = {literal(run_id)})"
        )
        self.warehouse.execute(
            f"INSERT INTO {cursor_table} (RUN_ID, WATERMARK) SELECT {literal(run_id)}, COALESCE("
            f"(SELECT MIN(r.{column}) FROM {run_table} AS r WHERE {held_back}), "
            f"(SELECT MAX(r.{column}) FROM {run_table} AS r), {self._watermark(cursor_table)})"
        )

    @staticmethod
    def _watermark(cursor_table: str) -> str:
        """The latest watermark as a scalar subquery (run ids sort by time)."""
        return f"(SELECT WATERMARK FROM {cursor_table} ORDER BY RUN_ID DESC LIMIT 1)"

    def _exists(self, table: str) -> bool:
        schema, name = table.split(".")
        rows = self.warehouse.query(
            "SELECT COUNT(*) FROM information_schema.tables "
            f"WHERE UPPER(table_schema) = {literal(schema.upper())} AND UPPER(table_name) = {literal(name.upper())}"
        )
        return bool(rows[0][0])


def key_columns(key: str) -> str:
    """The key as text and how many rows share it: the first two internal columns, over alias ``m``."""
    return f"CAST(m.{key} AS VARCHAR) AS {KEY}, COUNT(*) OVER (PARTITION BY m.{key}) AS {KEY_COUNT}"


def keyed_model(model: str, key: str, columns: list[str], sync_name: str) -> str:
    """The model laid out as a run table (internal columns first), every row new: a preview's view."""
    return (
        f"SELECT {key_columns(_column(key, columns, sync_name, 'key'))}, NULL AS {ROW_HASH}, 'new' AS {CHANGE}, m.* "
        f"FROM (\n{nested(model)}\n) AS m"
    )


def nested(model: str) -> str:
    """The model ready to nest as a subquery: trailing semicolons dropped.

    Callers wrap it in parentheses on their own lines, so a trailing "-- comment" cannot swallow them.
    """
    body = model.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def _column(column: str, columns: list[str], sync_name: str, field: str) -> str:
    """A configured column quoted as the warehouse spells it (the mapper's lookup: exact, else
    case-insensitive, since Snowflake upper-cases unquoted names); ConfigError names a missing one."""
    return quote(columns[column_index(columns, sync_name)(column, field)])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _timestamp(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None)

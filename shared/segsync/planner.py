"""Planning a run: diff the model in the warehouse, check keys, cut changed rows into chunks, queue them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from segsync.chunks import Chunker, dump_row, header
from segsync.config import AnySync, SegmentConnection
from segsync.errors import SegsyncError, WarehouseError
from segsync.mapping import Mapper, row_message_id
from segsync.observability import logger
from segsync.pacing import chunk_rows
from segsync.queue import ChunkQueue
from segsync.state import INTERNAL_COLUMNS, DiffCounts, WarehouseState, destination_id
from segsync.store import Rejection, RunStore
from segsync.upgrade import rekey_legacy_state
from segsync.warehouse import Warehouse
from segsync.warehouse.dialect import ModelColumn

FETCH_ROWS = 10_000
MAX_ROW_BYTES = 512 * 1024
REJECTION_FLUSH = 500


@dataclass(frozen=True)
class PlanLimits:
    """How big a chunk may grow: by rows (≈ Segment messages) and by SQS message bytes."""

    chunk_rows: int = 1_000
    chunk_bytes: int = 1_000_000
    sender_concurrency: int = 1
    events_per_second_cap: int | None = None
    """The senders' concurrency and the stack's pace cap: a slow destination gets smaller chunks (segsync.pacing)."""


@dataclass
class PlanResult:
    """What planning did, for the handler's response and the CLI summary."""

    sync: str
    run_id: str
    status: str
    rows_read: int = 0
    chunks: int = 0
    rejected: int = 0
    seconds: float = 0.0
    error: str | None = None
    diff: DiffCounts = field(default_factory=DiffCounts)
    rejections: list[Rejection] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "sync": self.sync,
            "run_id": self.run_id,
            "status": self.status,
            "rows_read": self.rows_read,
            "new": self.diff.new,
            "changed": self.diff.changed,
            "unchanged": self.diff.unchanged,
            "chunks": self.chunks,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def new_run_id(now: datetime | None = None) -> str:
    """Time-sortable and unique: the runs table lists a sync's newest runs first by this id."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def check_key(key: str | None, key_count: int, key_column: str) -> Rejection | None:
    """Null keys and duplicate keys (every row sharing one) cannot be synced: why, or None.

    ``key`` is the key's canonical text, as the warehouse wrote it (``segsync.warehouse.dialect``).
    """
    if key is None:
        return Rejection(None, "key", f"key column '{key_column}' is null")
    if key_count > 1:
        return Rejection(key, "key", f"duplicate key: {key_count} rows share it")
    return None


def encode_row(key: str, row: Sequence[Any]) -> bytes | Rejection:
    """A chunk row (key text, messageId, values) serialized, or why no chunk can carry it.

    Rows no JSON can carry and rows over ``MAX_ROW_BYTES`` are rejected by key.
    """
    try:
        encoded = dump_row(row)
    except TypeError as exc:
        return Rejection(key, "row", str(exc))
    if len(encoded) > MAX_ROW_BYTES:
        return Rejection(key, "row", f"row is {len(encoded):,} bytes, over the {MAX_ROW_BYTES:,} byte row limit")
    return encoded


class Planner:
    """Plans one run of one sync; the warehouse, queue and run store are given (ports, not globals)."""

    def __init__(self, runs: RunStore, queue: ChunkQueue, limits: PlanLimits | None = None) -> None:
        self._runs = runs
        self._queue = queue
        self._limits = limits or PlanLimits()

    def plan(
        self,
        sync: AnySync,
        destination: SegmentConnection,
        warehouse: Warehouse,
        state: WarehouseState,
        *,
        run_id: str,
        full_resync: bool = False,
    ) -> PlanResult:
        """Diff the model against state and queue what changed. A bad model fails this run only.

        The run item must exist (``RunStore.start``) and the sync's lock be held by ``run_id``.
        """
        started = time.monotonic()
        result = PlanResult(sync=sync.name, run_id=run_id, status="sending")
        try:
            state.ensure()
            columns = state.model_columns(sync.sql)
            Mapper(sync, [c.name for c in columns])
            rekey_legacy_state(state, sync, destination_id(destination), columns)
            result.diff = state.prepare(sync, destination_id(destination), columns, full_resync=full_resync)
            result.rows_read = result.diff.source_rows
            result.chunks = self._queue.send_all(self._chunks(sync, destination, warehouse, state, columns, result))
        except WarehouseError as exc:
            result.status, result.error = "failed", f"sync '{sync.name}': model query failed: {exc}"
        except SegsyncError as exc:
            result.status, result.error = "failed", f"sync '{sync.name}': {exc}"
        result.seconds = time.monotonic() - started
        self._flush_rejections(result)
        if result.status == "failed":
            self._runs.failed(sync.name, run_id, result.error or "")
            logger.error("run failed", extra=result.summary())
            return result
        self._runs.planned(
            sync.name,
            run_id,
            chunks=result.chunks,
            rows_read=result.rows_read,
            new=result.diff.new,
            changed=result.diff.changed,
            unchanged=result.diff.unchanged,
            rejected_planner=result.rejected,
            planner_s=round(result.seconds, 3),
        )
        logger.info("run planned", extra=result.summary())
        return result

    def _chunks(
        self,
        sync: AnySync,
        destination: SegmentConnection,
        warehouse: Warehouse,
        state: WarehouseState,
        columns: list[ModelColumn],
        result: PlanResult,
    ) -> Iterator[tuple[int, str]]:
        chunker = Chunker(
            run_id=result.run_id,
            header=header(
                sync.model_dump(mode="json", by_alias=True, exclude_none=True),
                destination.model_dump(mode="json", exclude_none=True),
                [c.name for c in columns],
            ),
            max_rows=chunk_rows(
                destination.events_per_second,
                self._limits.events_per_second_cap,
                self._limits.sender_concurrency,
                self._limits.chunk_rows,
            ),
            max_body_bytes=self._limits.chunk_bytes,
        )

        def accepted_rows() -> Iterator[bytes]:
            for batch in warehouse.stream(state.changed_rows_sql(sync.name), FETCH_ROWS):
                for row in batch.rows:
                    encoded = self._check(row, sync, result)
                    if encoded is not None:
                        yield encoded

        for number, _, body in chunker.chunks(accepted_rows()):
            yield number, body

    def _check(self, row: tuple[Any, ...], sync: AnySync, result: PlanResult) -> bytes | None:
        """The chunk row for a run-table row (its messageId written here, once), or None if rejected."""
        key, key_count, row_hash, previous_hash, change = row[:INTERNAL_COLUMNS]
        checked = check_key(key, key_count, sync.key)
        if checked is None:
            resync_run = result.run_id if change == "resync" else None
            message = row_message_id(sync, key, previous_hash, row_hash, resync_run)
            checked = encode_row(key, (key, message, *row[INTERNAL_COLUMNS:]))
            if not isinstance(checked, Rejection):
                return checked
        result.rejected += 1
        result.rejections.append(checked)
        if len(result.rejections) >= REJECTION_FLUSH:
            self._flush_rejections(result)
        return None

    def _flush_rejections(self, result: PlanResult) -> None:
        """Write rejections as they pile up, so a model of bad keys cannot exhaust memory."""
        if result.rejections:
            start = result.rejected - len(result.rejections)
            self._runs.put_rejections(result.sync, result.run_id, "planner", result.rejections, start=start)
            result.rejections.clear()

"""Planning a run: query the model, check keys, cut the rows into chunks and queue them."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from segsync.chunks import Chunker, dump_row, header
from segsync.config import SegmentConnection, TrackSync, UserSync
from segsync.errors import SegsyncError, WarehouseError
from segsync.mapping import Mapper
from segsync.observability import logger
from segsync.queue import ChunkQueue
from segsync.store import Rejection, RunStore
from segsync.warehouse import Warehouse

KEY_COUNT_COLUMN = "__segsync_key_count"
FETCH_ROWS = 10_000
MAX_ROW_BYTES = 512 * 1024
REJECTION_FLUSH = 500
SIMPLE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class PlanLimits:
    """How big a chunk may grow: by rows (≈ Segment messages) and by SQS message bytes."""

    chunk_rows: int = 1_000
    chunk_bytes: int = 1_000_000


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
    rejections: list[Rejection] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "sync": self.sync,
            "run_id": self.run_id,
            "status": self.status,
            "rows_read": self.rows_read,
            "chunks": self.chunks,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


def new_run_id(now: datetime | None = None) -> str:
    """Time-sortable and unique: the runs table lists a sync's newest runs first by this id."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


def keyed_query(model: str, key: str) -> str:
    """Wrap the model so the warehouse counts each key: duplicates are found by the engine, not in memory."""
    column = f"m.{key}" if SIMPLE_IDENTIFIER.match(key) else 'm."' + key.replace('"', '""') + '"'
    body = model.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    # The newline keeps a trailing "-- comment" in the model from swallowing the closing parenthesis.
    return f"SELECT m.*, COUNT(*) OVER (PARTITION BY {column}) AS {KEY_COUNT_COLUMN} FROM (\n{body}\n) AS m"


class Planner:
    """Plans one run of one sync; the warehouse, queue and run store are given (ports, not globals)."""

    def __init__(self, runs: RunStore, queue: ChunkQueue, limits: PlanLimits | None = None) -> None:
        self._runs = runs
        self._queue = queue
        self._limits = limits or PlanLimits()

    def plan(
        self,
        sync: UserSync | TrackSync,
        destination: SegmentConnection,
        warehouse: Warehouse,
        *,
        trigger: str,
        run_id: str | None = None,
    ) -> PlanResult:
        """Run the model and queue its rows. A bad model fails this run only, with a clear error."""
        started = time.monotonic()
        result = PlanResult(sync=sync.name, run_id=run_id or new_run_id(), status="sending")
        self._runs.start(sync.name, result.run_id, trigger)
        try:
            result.chunks = self._queue.send_all(self._chunks(sync, destination, warehouse, result))
        except WarehouseError as exc:
            result.status, result.error = "failed", f"sync '{sync.name}': model query failed: {exc}"
        except SegsyncError as exc:
            result.status, result.error = "failed", f"sync '{sync.name}': {exc}"
        result.seconds = time.monotonic() - started
        self._flush_rejections(sync.name, result)
        if result.status == "failed":
            self._runs.failed(sync.name, result.run_id, result.error or "")
            logger.error("run failed", extra=result.summary())
            return result
        self._runs.planned(
            sync.name,
            result.run_id,
            rows_read=result.rows_read,
            chunks=result.chunks,
            rejected=result.rejected,
            seconds=result.seconds,
        )
        logger.info("run planned", extra=result.summary())
        return result

    def fail(self, sync: str, run_id: str, trigger: str, error: str) -> PlanResult:
        """Record a run that could not start (bad sync item, unreachable warehouse) so it shows in history."""
        self._runs.start(sync, run_id, trigger)
        self._runs.failed(sync, run_id, error)
        result = PlanResult(sync=sync, run_id=run_id, status="failed", error=error)
        logger.error("run failed", extra=result.summary())
        return result

    def _chunks(
        self,
        sync: UserSync | TrackSync,
        destination: SegmentConnection,
        warehouse: Warehouse,
        result: PlanResult,
    ) -> Iterator[tuple[int, str]]:
        batches = warehouse.stream(keyed_query(sync.model, sync.key), FETCH_ROWS)
        first = next(batches, None)
        if first is None:
            return
        columns = first.columns[:-1]
        key_position = Mapper(sync, columns).key_position
        chunker = Chunker(
            run_id=result.run_id,
            header=header(
                sync.model_dump(mode="json", by_alias=True, exclude_none=True),
                destination.model_dump(mode="json", exclude_none=True),
                columns,
            ),
            max_rows=self._limits.chunk_rows,
            max_body_bytes=self._limits.chunk_bytes,
        )

        def accepted_rows() -> Iterator[bytes]:
            for batch in _chain(first, batches):
                for row in batch.rows:
                    result.rows_read += 1
                    encoded = self._check(row, key_position, sync.key, result)
                    if encoded is not None:
                        yield encoded

        for number, _, body in chunker.chunks(accepted_rows()):
            yield number, body

    def _check(
        self, row: tuple[Any, ...], key_position: int, key_column: str, result: PlanResult
    ) -> bytes | None:
        """Null keys, duplicate keys, unserializable and oversized rows become rejections here."""
        key = row[key_position]
        reason = None
        if key is None:
            reason = ("key", f"key column '{key_column}' is null")
        elif row[-1] > 1:
            reason = ("key", f"duplicate key: {row[-1]} rows share it")
        else:
            try:
                encoded = dump_row(row[:-1])
            except TypeError as exc:
                reason = ("row", str(exc))
            else:
                if len(encoded) <= MAX_ROW_BYTES:
                    return encoded
                reason = ("row", f"row is {len(encoded):,} bytes, over the {MAX_ROW_BYTES:,} byte row limit")
        result.rejected += 1
        result.rejections.append(Rejection(None if key is None else str(key), *reason))
        if len(result.rejections) >= REJECTION_FLUSH:
            self._flush_rejections(result.sync, result)
        return None

    def _flush_rejections(self, sync: str, result: PlanResult) -> None:
        """Write rejections as they pile up, so a model of bad keys cannot exhaust memory."""
        if result.rejections:
            start = result.rejected - len(result.rejections)
            self._runs.put_rejections(sync, result.run_id, "planner", result.rejections, start=start)
            result.rejections.clear()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest

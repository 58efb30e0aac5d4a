"""Planning a run: diff the model in the warehouse, check keys, cut changed rows into chunks, queue them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from segsync.changes import RESYNC, ChunkValues, check_removals, check_request, chunk_columns, silent_kinds
from segsync.chunks import Chunker, dump_row, header
from segsync.config import AnySync, SegmentConnection
from segsync.mapping import Mapper, row_message_id
from segsync.observability import logger
from segsync.pacing import chunk_rows, destination_pace
from segsync.queue import ChunkQueue
from segsync.release import ReleaseSchedule
from segsync.state import (
    DUPLICATE_KEY_REASON,
    INTERNAL_COLUMNS,
    NULL_KEY_REASON,
    DiffCounts,
    WarehouseState,
    destination_id,
)
from segsync.store import Rejection, RunStore, reason_kind
from segsync.upgrade import rekey_legacy_state
from segsync.waves import release_delay, wave_rows

FETCH_ROWS = 10_000
WAVE_SPAN = 50_000
"""Run-table rows (by SEQ) a wave reads per query: what the warehouse sorts at once, whatever the model's size."""
MAX_ROW_BYTES = 512 * 1024
REJECTION_FLUSH = 500


@dataclass(frozen=True)
class PlanLimits:
    """How big a chunk may grow (rows ≈ Segment messages, SQS message bytes), and how much goes out at once."""

    chunk_rows: int = 1_000
    chunk_bytes: int = 1_000_000
    events_per_second_cap: int | None = None
    """The stack's pace cap: a slow destination gets smaller chunks (segsync.pacing)."""
    plan_ahead_s: float = 300.0
    """At most this many seconds of the destination's pace wait in the queue (segsync.waves)."""
    work_s: float = 300.0
    """How long one planner invocation may spend queueing waves, whatever the model's size."""


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


@dataclass(frozen=True)
class Wave:
    """Rows ``first_seq``..``last_seq`` of a run, queued as chunks ``first_chunk``..``last_chunk``."""

    wave: int
    first_seq: int
    last_seq: int
    first_chunk: int
    last_chunk: int
    rows: int
    rejected: int


def new_run_id(now: datetime | None = None) -> str:
    """Time-sortable to the millisecond and unique: run lists show a sync's newest runs first by this id
    (to the second only, runs started within one second, as local ones are, listed in random order)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def check_key(key: str | None, key_count: int, key_column: str) -> Rejection | None:
    """Null keys and duplicate keys (every row sharing one) cannot be synced: why, or None.

    ``key`` is the key's canonical text, as the warehouse wrote it (``segsync.warehouse.dialect``).
    """
    if key is None:
        return Rejection(None, "key", NULL_KEY_REASON.format(column=key_column))
    if key_count > 1:
        return Rejection(key, "key", DUPLICATE_KEY_REASON.format(count=key_count))
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
    """Plans runs of syncs and queues them in waves; the run store and queue are given (ports, not globals)."""

    def __init__(
        self,
        runs: RunStore,
        queue: ChunkQueue,
        limits: PlanLimits | None = None,
        clock: Any = time.monotonic,
        schedule: ReleaseSchedule | None = None,
    ) -> None:
        self._runs = runs
        self._queue = queue
        self._limits = limits or PlanLimits()
        self._clock = clock
        self._schedule = schedule or ReleaseSchedule(runs.table)

    def plan(
        self,
        sync: AnySync,
        destination: SegmentConnection,
        state: WarehouseState,
        *,
        run_id: str,
        full_resync: bool = False,
        mark_synced: bool = False,
        allow_mass_removal: bool = False,
    ) -> PlanResult:
        """Diff the model against state in the warehouse, reject bad keys there, and queue the first wave.

        Rows of a kind the sync sends nothing for are recorded in state at once; with ``mark_synced`` (a
        baseline) every row is, and nothing is queued. A run that would remove more keys than the sync allows
        fails before anything is recorded or queued, unless ``allow_mass_removal``.

        The run holds the sync's lock (``RunStore.begin``). Raises whatever goes wrong: a WarehouseError
        for a model that fails, a SegsyncError for a bad mapping, anything else for a bug; the lifecycle
        fails the run with it.
        """
        started = self._clock()
        check_request(sync, full_resync=full_resync, baseline=mark_synced)
        state.ensure()
        state.fence(sync.name, run_id)
        columns = state.model_columns(sync.sql)
        Mapper(sync, chunk_columns(sync, [c.name for c in columns]))
        rekey_legacy_state(state, sync, destination_id(destination), columns)
        diff = state.prepare(sync, run_id, destination_id(destination), columns, full_resync=full_resync)
        state.reject_bad_keys(sync, run_id)
        check_removals(
            sync, removed=diff.removed, delivered=diff.delivered, rows=diff.source_rows, allowed=allow_mass_removal
        )
        state.keep_values(sync, run_id, destination_id(destination))
        settled = state.settle(sync, run_id, destination_id(destination), silent_kinds(sync, baseline=mark_synced))
        to_send = 0 if mark_synced else diff.to_send
        reasons = {}
        if diff.null_keys:
            reasons[f"key: {reason_kind(NULL_KEY_REASON.format(column=sync.key))}"] = diff.null_keys
        if diff.duplicate_keys:
            reasons[f"key: {reason_kind(DUPLICATE_KEY_REASON.format(count=2))}"] = diff.duplicate_keys
        self._runs.update_run(
            sync.name,
            run_id,
            status="sending",
            rows_read=diff.source_rows,
            new=diff.new,
            changed=diff.changed,
            unchanged=diff.unchanged,
            removed=diff.removed,
            rows_to_send=to_send,
            committed=settled,
            mark_synced=mark_synced or None,
            rejected_planner=diff.bad_keys,
            rejection_reasons=reasons,
            warning=bad_key_warning(diff, sync.key),
            planning_done=to_send == 0,
            planner_s=round(self._clock() - started, 3),
        )
        result = PlanResult(sync=sync.name, run_id=run_id, status="sending", rows_read=diff.source_rows, diff=diff)
        waves = self.top_up(sync, destination, state, self._runs.run(sync.name, run_id), queued_rows=0)
        result.chunks = sum(w.last_chunk - w.first_chunk + 1 for w in waves)
        result.rejected = diff.bad_keys + sum(w.rejected for w in waves)
        result.seconds = self._clock() - started
        logger.info("run planned", extra=result.summary())
        return result

    def top_up(
        self,
        sync: AnySync,
        destination: SegmentConnection,
        state: WarehouseState,
        run: dict[str, Any],
        queued_rows: int,
    ) -> list[Wave]:
        """Queue the run's next waves until ``plan_ahead_s`` of the pace waits in the queue, the rows run
        out, or this invocation's ``work_s`` is spent; record each wave as it is queued.

        Each wave takes its turn on the destination's release schedule (``segsync.release``): none is
        queued while other runs' waves fill the next ``plan_ahead_s`` toward the same destination.
        """
        pace = destination_pace(destination.events_per_second, self._limits.events_per_second_cap)
        target = destination_id(destination)
        deadline = self._clock() + self._limits.work_s
        queued = []
        while not run.get("planning_done") and self._clock() < deadline:
            budget = wave_rows(pace, self._limits.plan_ahead_s, queued_rows)
            if budget <= 0:
                break
            slot = self._schedule.reserve(target, budget / pace, self._limits.plan_ahead_s)
            budget = min(budget, round(slot.seconds * pace))
            if budget <= 0:
                break
            wave = self._wave(sync, destination, state, run, budget, pace, slot.after_s, deadline)
            self._schedule.give_back(target, slot, wave.rows / pace)
            progress = {
                "waves": wave.wave,
                "chunks_enqueued": wave.last_chunk,
                "rows_enqueued": run["rows_enqueued"] + wave.rows,
                "enqueued_seq": wave.last_seq,
                "planning_done": wave.rows + wave.rejected < budget and self._clock() < deadline,
                "rejected_planner": run["rejected_planner"] + wave.rejected,
                "peak_queued_rows": max(run["peak_queued_rows"], queued_rows + wave.rows),
            }
            if wave.rows + wave.rejected == 0:
                progress["waves"] = run["waves"]
                self._runs.update_run(sync.name, run["run_id"], planning_done=True)
            else:
                self._runs.put_wave(
                    sync.name, run["run_id"], asdict(wave), progress, after_chunks=run["chunks_enqueued"]
                )
                queued.append(wave)
            run = {**run, **progress}
            queued_rows += wave.rows
        return queued

    def _wave(
        self,
        sync: AnySync,
        destination: SegmentConnection,
        state: WarehouseState,
        run: dict[str, Any],
        budget: int,
        pace: float,
        after_s: float,
        deadline: float,
    ) -> Wave:
        """Read up to ``budget`` rows after the last queued one, and queue them as chunks released at the pace,
        the first ``after_s`` from now (where the wave's stretch of the release schedule begins)."""
        run_id, number = run["run_id"], run["waves"] + 1
        columns = state.run_columns(sync.name, run_id)
        values = ChunkValues(sync, columns, found_at=run["started_at"])
        chunker = Chunker(
            run_id=run_id,
            header=header(
                sync.model_dump(mode="json", by_alias=True, exclude_none=True),
                destination.model_dump(mode="json", exclude_none=True),
                values.names,
            ),
            max_rows=chunk_rows(
                destination.events_per_second, self._limits.events_per_second_cap, self._limits.chunk_rows
            ),
            max_body_bytes=self._limits.chunk_bytes,
            number=run["chunks_enqueued"],
        )
        read = _WaveRead(sync, run_id, values, last_seq=run["enqueued_seq"])

        def accepted() -> Iterator[bytes]:
            # Span by span of the run table, so the warehouse never sorts more than WAVE_SPAN rows at once.
            after, left, end = run["enqueued_seq"], budget, state.last_seq(sync.name, run_id)
            while left > 0 and after < end:
                through = min(end, after + WAVE_SPAN)
                sql = state.wave_sql(sync, run_id, after, left, through)
                for batch in state.warehouse.stream(sql, FETCH_ROWS):
                    left -= len(batch.rows)
                    for row in batch.rows:
                        encoded = read.encode(row)
                        if encoded is not None:
                            yield encoded
                        if len(read.rejections) >= REJECTION_FLUSH:
                            read.flush(state, number)
                    if self._clock() >= deadline:
                        return
                after = through

        ahead = 0
        rows = 0

        def released() -> Iterator[tuple[int, str, int]]:
            nonlocal ahead, rows
            for chunk, count, body in chunker.chunks(accepted()):
                yield chunk, body, release_delay(ahead, pace, after_s)
                ahead += count
                rows += count

        self._queue.send_all(released())
        read.flush(state, number)
        return Wave(
            wave=number,
            first_seq=run["enqueued_seq"] + 1,
            last_seq=read.last_seq,
            first_chunk=run["chunks_enqueued"] + 1,
            last_chunk=chunker.number,
            rows=rows,
            rejected=read.rejected,
        )


@dataclass
class _WaveRead:
    """Run-table rows of a wave as they stream past: chunk rows, or rejections kept for the warehouse."""

    sync: AnySync
    run_id: str
    values: ChunkValues
    last_seq: int
    rejected: int = 0
    pages: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def encode(self, row: tuple[Any, ...]) -> bytes | None:
        """The chunk row (its messageId written here, once), or None if no chunk can carry it."""
        key, _, row_hash, previous_hash, change, seq, previous_values = row[:INTERNAL_COLUMNS]
        self.last_seq = seq
        resync_run = self.run_id if change == RESYNC else None
        message = row_message_id(self.sync, key, previous_hash, row_hash, resync_run, change=change, run_id=self.run_id)
        encoded = encode_row(key, (key, message, *self.values(change, previous_values, row[INTERNAL_COLUMNS:])))
        if isinstance(encoded, Rejection):
            self.rejected += 1
            self.rejections.append({"row_key": encoded.key, "field": encoded.field, "reason": encoded.reason})
            return None
        return encoded

    def flush(self, state: WarehouseState, wave: int) -> None:
        """Write the rejections read so far to the warehouse, a page at a time (bounded memory)."""
        if self.rejections:
            self.pages += 1
            state.record_rejections(
                self.sync.name, self.run_id, f"planner wave {wave} page {self.pages}", self.rejections
            )
            self.rejections = []


def bad_key_warning(diff: DiffCounts, key: str) -> str | None:
    """A line for a model most of whose rows cannot be synced for their key, or None."""
    if not diff.source_rows or diff.bad_keys * 2 <= diff.source_rows:
        return None
    parts = []
    if diff.null_keys:
        parts.append(f"{diff.null_keys:,} have a NULL key '{key}'")
    if diff.duplicate_keys:
        parts.append(f"{diff.duplicate_keys:,} share their key with another row")
    share = 100 * diff.bad_keys / diff.source_rows
    return f"{share:.0f}% of the model's {diff.source_rows:,} rows cannot be synced: {' and '.join(parts)}"

"""Sending a chunk: map rows, validate, pack batches, post to Segment, count the chunk once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from segsync.chunks import Chunk, decode
from segsync.config import SegmentConnection, parse_sync
from segsync.endpoints import SenderPolicy
from segsync.errors import DeliveryError, SegsyncError
from segsync.mapping import Mapped, Mapper
from segsync.observability import logger
from segsync.pacing import destination_pace
from segsync.secrets import resolve
from segsync.segment import BatchRejected, SegmentClient, pack
from segsync.store import ChunkTally, Rejection, RunStore

MIN_EVENTS_PER_SECOND = 1.0
BURST_S = 2.0
"""How far ahead of the pace one sender may run: two seconds' worth of events at once, the chunk it picked up
late and the next one, released on time (chunks hold one second of the pace each)."""
CATCH_UP = 1.25
"""How much faster than the pace the guard lets a sender get back on schedule. Released chunks come at the
pace exactly, so a guard refilled at the pace would never recover from one chunk picked up late with the
next (a cold start, a slow poll): it would then hold every later chunk back by that much, billed."""
RECOVERY_INTERVAL_S = 10.0
"""How long a slowed-down sender must go without a 429 before it speeds up a step."""
RECOVERY_STEP = 0.1
"""Each step gives back this share of the configured pace (AIMD: halve on 429, add back slowly)."""


class RateLimiter:
    """Guards one sender's bursts toward a destination; the planner's release schedule paces the fleet.

    The planner releases a run's chunks at the destination's pace (``segsync.waves``), each at most one
    second of it (``segsync.pacing``), so a sender given a released chunk sends it at full speed and ends:
    it waits only when it runs more than BURST_S ahead of CATCH_UP times the pace (a batch of chunks found
    queued together, after the fleet fell behind). A 429 halves the pace (never below MIN_EVENTS_PER_SECOND) and
    holds every batch that shares this limiter until Segment's ``Retry-After`` has passed. After
    RECOVERY_INTERVAL_S without a 429 the pace grows by RECOVERY_STEP of the configured pace, and so on
    each interval, never past it: one 429 costs about 50 s of reduced pace, and a sender that keeps
    hitting 429s stays slow.
    """

    def __init__(
        self,
        events_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = events_per_second
        self.rate = events_per_second
        self._clock = clock
        self._sleep = sleep
        self._paced_until = clock()
        """When everything let through so far would have gone out at the pace."""
        self._held_until = self._paced_until
        self._changed_at = self._paced_until
        self._lock = threading.Lock()

    def acquire(self, events: int, deadline: float) -> None:
        """Wait until ``events`` more events keep within the pace, unless that reaches ``deadline`` (``clock()`` time).

        Raises:
            DeliveryError: the pace (or a 429's Retry-After) holds the batch until the deadline or later;
                nothing is reserved, and the record goes back to the queue instead of Lambda timing out.
        """
        with self._lock:
            now = self._clock()
            self._recover(now)
            start = max(now, self._paced_until - BURST_S, self._held_until)
            if start >= deadline:
                raise DeliveryError(
                    f"the pace toward Segment ({self.rate:g} events/s) holds the next batch for {start - now:.1f}s, "
                    f"past this invocation's time budget ({max(deadline - now, 0):.1f}s left)"
                )
            self._paced_until = max(self._paced_until, start) + events / (self.rate * CATCH_UP)
        if start > now:
            self._sleep(start - now)

    def throttled(self, retry_after: float | None = None) -> None:
        """Segment said 429: halve the pace, and start no batch before its ``Retry-After`` has passed."""
        with self._lock:
            now = self._clock()
            self.rate = max(MIN_EVENTS_PER_SECOND, self.rate / 2)
            self._changed_at = now
            if retry_after:
                self._held_until = max(self._held_until, now + retry_after)

    def _recover(self, now: float) -> None:
        """Add back one step per quiet interval since the last change (called under the lock)."""
        if self.rate >= self.target:
            return
        steps = int((now - self._changed_at) // RECOVERY_INTERVAL_S)
        if steps > 0:
            self.rate = min(self.target, self.rate + steps * RECOVERY_STEP * self.target)
            self._changed_at += steps * RECOVERY_INTERVAL_S


@dataclass
class ChunkOutcome:
    """What happened to one chunk, for logs and tests."""

    run_id: str
    number: int
    duplicate: bool
    tally: ChunkTally | None = None
    stale: bool = False
    """Dropped unsent: its run no longer holds its sync's lock."""
    rejections: list[Rejection] = field(default_factory=list)


class Sender:
    """Sends chunks to Segment; one instance per warm Lambda container (clients are reused)."""

    def __init__(
        self,
        runs: RunStore,
        *,
        policy: SenderPolicy | None = None,
        events_per_second_cap: int | None = None,
        read_timeout_s: float | None = None,
        client_factory: Callable[[SegmentConnection, Callable[[float], None]], SegmentClient] | None = None,
    ) -> None:
        self._runs = runs
        self._policy = policy or SenderPolicy.of()
        self._cap = events_per_second_cap
        self._client_factory = client_factory or partial(default_client, read_timeout_s=read_timeout_s)
        self._clients: dict[str, tuple[SegmentClient, RateLimiter]] = {}

    def process(self, body: str, deadline: float) -> ChunkOutcome:
        """Deliver one chunk before ``deadline`` (a ``time.monotonic()`` value) or raise.

        Raises DeliveryError when Segment did not accept a batch in time: the SQS record is then
        reported failed and redelivered, and nothing of this chunk is counted as sent.
        """
        chunk = decode(body)
        if self._runs.chunk_recorded(chunk.run_id, chunk.number):
            logger.info("chunk already delivered", extra={"run_id": chunk.run_id, "chunk": chunk.number})
            return ChunkOutcome(chunk.run_id, chunk.number, duplicate=True)
        sync_name = chunk.sync.get("name", "?")
        lock = self._runs.lock(sync_name)
        if lock is None or lock["run_id"] != chunk.run_id:
            # Its run was abandoned, failed or superseded: a newer run may already have sent newer values,
            # which this chunk would overwrite downstream. Its rows are the newer run's to send.
            holder = "no run" if lock is None else f"run {lock['run_id']}"
            logger.warning(
                "stale chunk dropped",
                extra={"sync": sync_name, "run_id": chunk.run_id, "chunk": chunk.number, "holder": holder},
            )
            return ChunkOutcome(chunk.run_id, chunk.number, duplicate=False, stale=True)
        try:
            return self._send(chunk, deadline)
        except SegsyncError as exc:
            sync = chunk.sync.get("name", "?")
            self._runs.chunk_failed(sync, chunk.run_id, chunk.number, str(exc))
            logger.error(
                "chunk not delivered",
                extra={"sync": sync, "run_id": chunk.run_id, "chunk": chunk.number, "error": str(exc)},
            )
            raise

    def _send(self, chunk: Chunk, deadline: float) -> ChunkOutcome:
        sync = parse_sync(chunk.sync)
        # Before any secret is read: a chunk is input, the deployment decides where a key may go.
        destination = self._policy.destination(chunk.destination)
        messages, rejections = self._map(chunk, Mapper(sync, chunk.columns))
        client, limiter = self._client(destination)
        keys = {id(m.body): m.key for m in messages}
        progress = _Progress(rejections)
        for batch in pack(m.body for m in messages):
            limiter.acquire(len(batch), deadline)
            self._deliver(client, batch, keys, deadline, progress)
        tally = ChunkTally(
            rows=len(chunk.rows),
            sent=progress.sent,
            rejected=len(rejections),
            batches=progress.batches,
            bytes_sent=progress.bytes_sent,
            retries=progress.retries,
        )
        if rejections:
            self._runs.put_rejections(sync.name, chunk.run_id, chunk.number, rejections)
        counted = self._runs.record_chunk(chunk.run_id, chunk.number, tally)
        logger.info(
            "chunk delivered",
            extra={
                "sync": sync.name,
                "run_id": chunk.run_id,
                "chunk": chunk.number,
                "rows": tally.rows,
                "sent": tally.sent,
                "rejected": tally.rejected,
                "batches": tally.batches,
                "counted": counted,
            },
        )
        return ChunkOutcome(chunk.run_id, chunk.number, duplicate=not counted, tally=tally, rejections=rejections)

    def _map(self, chunk: Chunk, mapper: Mapper) -> tuple[list[Mapped], list[Rejection]]:
        messages: list[Mapped] = []
        rejections: list[Rejection] = []
        for row in chunk.rows:
            result = mapper.map(row)
            (messages if isinstance(result, Mapped) else rejections).append(result)
        return messages, rejections

    def _deliver(
        self,
        client: SegmentClient,
        batch: list[bytes],
        keys: dict[int, str],
        deadline: float,
        progress: _Progress,
    ) -> None:
        """Post a batch; on a 400, bisect to find the messages Segment refuses and reject only those."""
        progress.batches += 1
        try:
            result = client.send(batch, deadline)
        except BatchRejected as exc:
            if len(batch) == 1:
                reason = f"Segment refused it: HTTP {exc.status} {exc.detail}"
                progress.rejections.append(Rejection(keys.get(id(batch[0])), "message", reason))
                return
            middle = len(batch) // 2
            self._deliver(client, batch[:middle], keys, deadline, progress)
            self._deliver(client, batch[middle:], keys, deadline, progress)
            return
        progress.sent += len(batch)
        progress.bytes_sent += result.bytes_sent
        progress.retries += result.retries

    def _client(self, destination: SegmentConnection) -> tuple[SegmentClient, RateLimiter]:
        cache_key = destination.model_dump_json()
        if cache_key not in self._clients:
            limiter = RateLimiter(destination_pace(destination.events_per_second, self._cap))
            self._clients[cache_key] = (self._client_factory(destination, limiter.throttled), limiter)
        return self._clients[cache_key]


@dataclass
class _Progress:
    """Running totals while a chunk's batches go out."""

    rejections: list[Rejection]
    sent: int = 0
    batches: int = 0
    bytes_sent: int = 0
    retries: int = 0


def default_client(
    destination: SegmentConnection, on_throttle: Callable[[float], None], read_timeout_s: float | None = None
) -> SegmentClient:
    """A client for the destination's API base, with its write key read from its secret.

    ``read_timeout_s``: how long to wait for Segment's answer before retrying (None: the client's default).
    """
    timeouts = {"read_timeout": read_timeout_s} if read_timeout_s is not None else {}
    return SegmentClient(
        destination.api_base,
        resolve(destination.write_key, "Segment write key"),
        on_throttle=on_throttle,
        # On 401/403: read the secret again past the cache (it may have been rotated) and retry once.
        refresh_key=partial(resolve, destination.write_key, "Segment write key", fresh=True),
        **timeouts,
    )

"""Lambda events → library calls: the glue both function entry files share, testable without Lambda."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from segsync.config import DuckDBConnection, SegmentConnection, SnowflakeConnection
from segsync.errors import ConfigError, SegsyncError
from segsync.observability import logger, metrics
from segsync.planner import PlanLimits, Planner, PlanResult, new_run_id
from segsync.queue import ChunkQueue
from segsync.sender import ChunkOutcome, Sender
from segsync.settings import PlannerSettings, SenderSettings, aws_endpoint, dynamodb_table, sqs_client
from segsync.store import RunStore, SyncStore
from segsync.warehouse import connect

DEADLINE_MARGIN_S = 5.0


class PlannerEvent(BaseModel):
    """What starts a planner: the schedule's tick (no syncs named: every enabled sync) or a run request."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    syncs: list[str] | None = None
    sync: str | None = None
    full_resync: bool = False
    trigger: str = "schedule"


def plan_event(event: dict[str, Any], settings: PlannerSettings) -> dict[str, Any]:
    """Plan a run for each sync the event names (or every enabled one); one bad sync never stops the rest."""
    try:
        request = PlannerEvent.model_validate(event or {})
    except ValidationError as exc:
        raise ConfigError(f"planner event: {exc.errors()[0]['msg']}") from None
    store = SyncStore(dynamodb_table(settings.syncs_table))
    planner = Planner(
        RunStore(dynamodb_table(settings.runs_table)),
        ChunkQueue(sqs_client(), settings.queue_url),
        PlanLimits(chunk_rows=settings.chunk_rows, chunk_bytes=settings.chunk_bytes),
    )
    names = request.syncs or ([request.sync] if request.sync else store.sync_names())
    results = [_plan_one(store, planner, name, request) for name in names]
    return {"runs": [r.summary() for r in results if r is not None]}


def _plan_one(store: SyncStore, planner: Planner, name: str, request: PlannerEvent) -> PlanResult | None:
    logger.append_keys(sync=name)
    try:
        sync = store.sync(name)
        if not sync.enabled and request.sync is None and request.syncs is None:
            return None
        source = store.connection(sync.source)
        destination = store.connection(sync.destination)
        if not isinstance(source, DuckDBConnection | SnowflakeConnection):
            raise ConfigError(f"sync '{name}': source '{sync.source}' is not a warehouse connection")
        if not isinstance(destination, SegmentConnection):
            raise ConfigError(f"sync '{name}': destination '{sync.destination}' is not a segment connection")
        with connect(source) as warehouse:
            result = planner.plan(sync, destination, warehouse, trigger=request.trigger)
    except SegsyncError as exc:
        result = planner.fail(name, new_run_id(), request.trigger, str(exc))
    metrics.add_metric(name="RowsPlanned", unit="Count", value=result.rows_read)
    metrics.add_metric(name="RowsRejected", unit="Count", value=result.rejected)
    if result.status == "failed":
        metrics.add_metric(name="RunsFailed", unit="Count", value=1)
    return result


@cache
def sender_for(
    runs_table: str, concurrency: int, events_per_second: int | None, endpoint: str | None
) -> Sender:
    """One Sender per warm container: its HTTP connections and rate limiter outlive an invocation.

    The AWS endpoint is part of the key so a client never outlives the stack it was made for.
    """
    return Sender(
        RunStore(dynamodb_table(runs_table)), concurrency=concurrency, events_per_second_cap=events_per_second
    )


def send_record(body: str, remaining_ms: int, settings: SenderSettings) -> ChunkOutcome:
    """Deliver one SQS record's chunk within the invocation's remaining time (less a margin)."""
    deadline = time.monotonic() + remaining_ms / 1000 - DEADLINE_MARGIN_S
    sender = sender_for(
        settings.runs_table,
        settings.sender_max_concurrency,
        settings.segment_events_per_second,
        aws_endpoint(),
    )
    try:
        outcome = sender.process(body, deadline)
    except SegsyncError:
        # The caller reports the record failed to SQS, which redelivers it (then parks it in the DLQ).
        metrics.add_metric(name="ChunksFailed", unit="Count", value=1)
        raise
    if outcome.tally is not None:
        metrics.add_metric(name="MessagesSent", unit="Count", value=outcome.tally.sent)
        metrics.add_metric(name="MessagesRejected", unit="Count", value=outcome.tally.rejected)
        metrics.add_metric(name="SegmentRetries", unit="Count", value=outcome.tally.retries)
    return outcome

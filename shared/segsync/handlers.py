"""Lambda events → library calls: the glue both function entry files share, testable without Lambda."""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from segsync.config import WAREHOUSE_CONNECTIONS, AnyWarehouseConnection, SegmentConnection
from segsync.dispatch import Dispatcher, Invoke
from segsync.endpoints import SenderPolicy
from segsync.errors import ConfigError, SegsyncError
from segsync.lifecycle import RunLifecycle
from segsync.notify import Notifier, Topics
from segsync.observability import logger, metrics
from segsync.planner import PlanLimits, Planner
from segsync.queue import ChunkQueue
from segsync.sender import ChunkOutcome, Sender
from segsync.settings import (
    PlannerSettings,
    SenderSettings,
    aws_client,
    aws_endpoint,
    dynamodb_table,
    sns_client,
    sqs_client,
)
from segsync.state import WarehouseState
from segsync.store import NotificationLog, RunStore, SyncStore
from segsync.warehouse import connect
from segsync.warehouse.policy import WarehousePolicy

DEADLINE_MARGIN_S = 5.0


class PlannerEvent(BaseModel):
    """What starts a planner: the schedule's tick (no sync named) or a request for named syncs.

    ``action``: ``run`` moves each sync's live run along, then plans a new one unless the live run goes
    on; ``continue`` only moves the live run along (checkpoints delivered waves, queues the next ones,
    renews its lock, commits it once everything is delivered). A tick starts each due sync, and
    continues each live run, in its own invocation (see ``segsync.dispatch``).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: Literal["run", "continue"] = "run"
    syncs: list[str] | None = None
    sync: str | None = None
    full_resync: bool = False
    trigger: str = "schedule"
    run_id: str | None = Field(default=None, pattern=r"^\d{8}T\d{6}(\d{3})?Z-[0-9a-f]{6}$")
    """The id a caller chose for a one-sync run so it can follow it (``segsync run --wait``); ids made
    before they carried milliseconds are accepted too."""
    dbt_models: list[str] | None = None
    """Models a dbt job just built: start the enabled syncs that read them (``segsync.webhook``)."""
    mark_synced: bool = False
    """A baseline: record every current row of the named syncs as delivered, sending nothing."""
    allow_mass_removal: bool = False
    """Send removals even past a sync's ``max_removed_share`` (or when its model returns no rows)."""


def plan_event(event: dict[str, Any], settings: PlannerSettings, invoke: Invoke | None = None) -> dict[str, Any]:
    """Handle a planner event for each sync it names, or dispatch the tick; one bad sync never stops the rest.

    ``invoke`` starts another planner invocation: on Lambda, this function again, asynchronously;
    elsewhere (no function name in the environment), the same handling inline.
    """
    try:
        request = PlannerEvent.model_validate(event or {})
    except ValidationError as exc:
        raise ConfigError(f"planner event: {exc.errors()[0]['msg']}") from None
    store = SyncStore(dynamodb_table(settings.syncs_table))
    runs = RunStore(dynamodb_table(settings.runs_table))
    planner = Planner(
        runs,
        ChunkQueue(sqs_client(), settings.queue_url),
        PlanLimits(
            chunk_rows=settings.chunk_rows,
            chunk_bytes=settings.chunk_bytes,
            events_per_second_cap=settings.segment_events_per_second,
            plan_ahead_s=settings.plan_ahead_seconds,
        ),
    )
    notifier = _notifier(store, runs, settings)
    policy = WarehousePolicy.of(settings.warehouse_allowed_hosts, settings.warehouse_secrets_prefix)
    lifecycle = RunLifecycle(runs, planner, settings.run_lock_seconds, on_outcome=notifier.run_finished)
    named = request.syncs or ([request.sync] if request.sync else None)
    if request.mark_synced and (named is None or request.action != "run"):
        raise ConfigError("planner event: mark_synced records the rows of the syncs it names: give 'sync' or 'syncs'")
    if request.dbt_models is not None:
        dispatcher = Dispatcher(store, runs, invoke or _self_invoker(settings))
        return {"dispatched": dispatcher.dbt_built(request.dbt_models, request.trigger)}
    if named is None:
        dispatched = Dispatcher(store, runs, invoke or _self_invoker(settings)).tick(request.trigger)
        notifier.check_stale(store.sync_names())
        return {"dispatched": dispatched}
    results = []
    for name in named:
        logger.append_keys(sync=name)
        if request.action == "continue":
            results.append(_continue_one(store, lifecycle, name, policy))
        else:
            results.append(_run_one(store, lifecycle, name, request, policy))
    return {"runs": [r for r in results if r is not None]}


def _notifier(store: SyncStore, runs: RunStore, settings: PlannerSettings) -> Notifier:
    return Notifier(
        store,
        runs,
        NotificationLog(dynamodb_table(settings.runs_table)),
        project_file=settings.project_file,
        topics=Topics(own=settings.notification_topic_arn, extra=settings.extra_notification_topic_arn or None),
        sns=sns_client,
        timeout_s=settings.notify_timeout_s,
    )


def _self_invoker(settings: PlannerSettings) -> Invoke:
    """Each due sync in its own planner invocation (asynchronous), or inline outside Lambda."""
    function = settings.aws_lambda_function_name
    if function is None:
        return lambda event: logger.info("planned inline", extra=plan_event(event, settings))
    client = aws_client("lambda", aws_endpoint(), os.environ.get("AWS_DEFAULT_REGION"))

    def invoke(event: dict[str, Any]) -> None:
        client.invoke(FunctionName=function, InvocationType="Event", Payload=orjson.dumps(event))

    return invoke


def _resolve(
    store: SyncStore, name: str, policy: WarehousePolicy
) -> tuple[Any, AnyWarehouseConnection, SegmentConnection]:
    """A sync item and its connections, validated, its source checked against the deployment's policy.

    Raises:
        ConfigError: names what is wrong.
        PolicyError: the source would send credentials where the deployment does not allow, or read them
            from where it may not (before any secret is read).
    """
    sync = store.sync(name)
    source = store.connection(sync.source)
    destination = store.connection(sync.destination)
    if not isinstance(source, WAREHOUSE_CONNECTIONS):
        raise ConfigError(f"sync '{name}': source '{sync.source}' is not a warehouse connection")
    if not isinstance(destination, SegmentConnection):
        raise ConfigError(f"sync '{name}': destination '{sync.destination}' is not a segment connection")
    policy.check(name, sync.source, source)
    return sync, source, destination


def _run_one(
    store: SyncStore, lifecycle: RunLifecycle, name: str, request: PlannerEvent, policy: WarehousePolicy
) -> dict[str, Any] | None:
    if request.run_id and lifecycle.known(name, request.run_id):
        # Lambda may deliver an asynchronous invocation twice: the run it asked for exists already.
        logger.info("run already started", extra={"sync": name, "run_id": request.run_id})
        return None
    try:
        sync, source, destination = _resolve(store, name, policy)
        with connect(source) as warehouse:
            result = lifecycle.start(
                sync,
                destination,
                WarehouseState(warehouse, source.state_schema),
                trigger=request.trigger,
                full_resync=request.full_resync,
                run_id=request.run_id,
                mark_synced=request.mark_synced,
                allow_mass_removal=request.allow_mass_removal,
            )
    except SegsyncError as exc:
        result = lifecycle.record_failure(name, request.trigger, str(exc), run_id=request.run_id)
    if result.status == "skipped" and request.run_id:
        lifecycle.record_skipped(name, request.trigger, request.run_id, result.error or "")
    metrics.add_metric(name="RowsPlanned", unit="Count", value=result.rows_read)
    metrics.add_metric(name="RowsRejected", unit="Count", value=result.rejected)
    if result.status == "failed":
        metrics.add_metric(name="RunsFailed", unit="Count", value=1)
    return result.summary()


def _continue_one(
    store: SyncStore, lifecycle: RunLifecycle, name: str, policy: WarehousePolicy
) -> dict[str, Any] | None:
    """Move the sync's live run along, if it has one; its run item as it is now."""
    lock = lifecycle.live(name)
    if lock is None:
        return None
    try:
        sync, source, destination = _resolve(store, name, policy)
        with connect(source) as warehouse:
            run = lifecycle.advance(sync, destination, WarehouseState(warehouse, source.state_schema), lock)
    except SegsyncError as exc:
        # The sync item or its warehouse connection broke mid-run: the run goes on, its lock expires
        # unless the next tick can move it along.
        logger.error("run not advanced", extra={"sync": name, "run_id": lock, "error": str(exc)})
        return {"sync": name, "run_id": lock, "status": "sending", "error": str(exc)}
    shown = ("sync", "run_id", "status", "planning_done", "waves", "chunks_enqueued", "chunks_done", "committed")
    return {key: run.get(key) for key in shown}


@cache
def sender_for(settings: SenderSettings, endpoint: str | None) -> Sender:
    """One Sender per warm container: its HTTP connections and rate limiter outlive an invocation.

    The AWS endpoint is part of the key so a client never outlives the stack it was made for.
    """
    return Sender(
        RunStore(dynamodb_table(settings.runs_table)),
        policy=SenderPolicy.of(settings.segment_allowed_endpoints, settings.segment_secrets_prefix),
        events_per_second_cap=settings.segment_events_per_second,
        read_timeout_s=settings.segment_read_timeout_s,
    )


def send_record(body: str, remaining_ms: int, settings: SenderSettings) -> ChunkOutcome:
    """Deliver one SQS record's chunk within the invocation's remaining time (less a margin)."""
    deadline = time.monotonic() + remaining_ms / 1000 - DEADLINE_MARGIN_S
    sender = sender_for(settings, aws_endpoint())
    started = time.monotonic()
    try:
        outcome = sender.process(body, deadline)
    except SegsyncError:
        # The caller reports the record failed to SQS, which redelivers it (then parks it in the DLQ).
        metrics.add_metric(name="ChunksFailed", unit="Count", value=1)
        raise
    if outcome.stale:
        metrics.add_metric(name="StaleChunksDropped", unit="Count", value=1)
    if outcome.tally is not None:
        metrics.add_metric(name="MessagesSent", unit="Count", value=outcome.tally.sent)
        metrics.add_metric(name="MessagesRejected", unit="Count", value=outcome.tally.rejected)
        metrics.add_metric(name="SegmentRetries", unit="Count", value=outcome.tally.retries)
        if outcome.tally.batches:
            per_batch_ms = (time.monotonic() - started) * 1000 / outcome.tally.batches
            metrics.add_metric(name="BatchLatency", unit="Milliseconds", value=round(per_batch_ms, 1))
    return outcome

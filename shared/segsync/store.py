"""DynamoDB adapters: sync configuration (console-editable items) and run bookkeeping."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from segsync.config import Notification, Project, parse_connection, parse_notifications, parse_sync
from segsync.errors import ConfigError, SegsyncError

RUN_TTL_S = 30 * 24 * 3600
SYNC_KIND = "sync"
CONNECTION_KIND = "connection"
PROJECT_KIND = "project"
NOTIFICATIONS = "notifications"
"""The project-level item (kind ``project``) holding the project file's ``notifications:``."""


def project_item_bodies(project: Project) -> list[dict[str, Any]]:
    """The items a project file becomes in the syncs table, as plain data: connections, syncs, notifications.

    The notifications item is written even when empty, so removing them from the file removes them here.
    """
    items = [
        {"kind": CONNECTION_KIND, "name": name, **c.model_dump(mode="json", by_alias=True, exclude_none=True)}
        for name, c in project.connections.items()
    ]
    items += [{"kind": SYNC_KIND, **s.model_dump(mode="json", by_alias=True, exclude_none=True)} for s in project.syncs]
    notifications = [n.model_dump(mode="json", exclude_defaults=True) for n in project.notifications]
    items.append({"kind": PROJECT_KIND, "name": NOTIFICATIONS, NOTIFICATIONS: notifications})
    return items


def to_item(data: Any, top: bool = True) -> Any:
    """Plain JSON-like data → DynamoDB attribute values (floats become Decimal).

    Unset top-level fields are left out; a null inside (a ``{value: null}`` constant) is kept.
    """
    if isinstance(data, float):
        return Decimal(repr(data))
    if isinstance(data, dict):
        return {k: to_item(v, top=False) for k, v in data.items() if not (top and v is None)}
    if isinstance(data, list):
        return [to_item(v, top=False) for v in data]
    return data


def from_item(data: Any) -> Any:
    """DynamoDB attribute values → plain data (Decimal becomes int or float)."""
    if isinstance(data, Decimal):
        return int(data) if data == data.to_integral_value() else float(data)
    if isinstance(data, dict):
        return {k: from_item(v) for k, v in data.items()}
    if isinstance(data, list):
        return [from_item(v) for v in data]
    return data


class SyncStore:
    """The syncs table: one item per sync and per connection, keyed (kind, name)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def push(self, project: Project) -> None:
        """Write every connection, sync and the notifications of a project file (already validated)."""
        with self._table.batch_writer() as batch:
            for item in project_item_bodies(project):
                batch.put_item(Item=to_item(item))

    def notifications(self) -> list[Notification]:
        """The project's notifications (none if never pushed); a bad item raises ConfigError naming the field."""
        item = self._get(PROJECT_KIND, NOTIFICATIONS)
        return [] if item is None else parse_notifications(item.get(NOTIFICATIONS, []))

    def sync(self, name: str) -> Any:
        """Read and validate one sync; a bad item raises ConfigError naming the field."""
        item = self._get(SYNC_KIND, name)
        if item is None:
            raise ConfigError(f"sync '{name}' is not in the syncs table")
        return parse_sync(item)

    def connection(self, name: str) -> Any:
        """Read and validate one connection item."""
        item = self._get(CONNECTION_KIND, name)
        if item is None:
            raise ConfigError(f"connection '{name}' is not in the syncs table")
        return parse_connection(name, item)

    def sync_names(self) -> list[str]:
        """Names of all sync items, valid or not (a bad item must still get its own failed run)."""
        names: list[str] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("kind").eq(SYNC_KIND),
            "ProjectionExpression": "#n",
            "ExpressionAttributeNames": {"#n": "name"},
        }
        while True:
            page = self._table.query(**kwargs)
            names.extend(item["name"] for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return names
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get(self, kind: str, name: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"kind": kind, "name": name}).get("Item")
        if item is None:
            return None
        item = from_item(item)
        item.pop("kind")
        if kind == CONNECTION_KIND:
            item.pop("name")
        return item


QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
NUMBERS = re.compile(r"\d[\d,]*")


def reason_kind(reason: str) -> str:
    """A rejection reason without the values and numbers quoted in it, to group alike ones."""
    return NUMBERS.sub("N", QUOTED.sub("…", reason))


@dataclass(frozen=True)
class Rejection:
    """A row that was not sent, and why; it is tried again next run."""

    key: str | None
    field: str
    reason: str


@dataclass(frozen=True)
class ChunkTally:
    """What a sender did with one chunk."""

    rows: int
    sent: int
    rejected: int
    batches: int
    bytes_sent: int
    retries: int


RUN_COUNTERS = (
    "waves", "chunks_enqueued", "rows_enqueued", "enqueued_seq", "chunks_done", "rows_done", "sent",
    "rejected_sender", "batches", "bytes_sent", "retries", "checkpoints", "checkpointed_wave", "committed",
    "peak_queued_rows",
)  # fmt: skip
"""A run item's counters, zero at its start: the planner keeps them as waves go out and chunks come back."""


class LostLock(SegsyncError):
    """The run no longer holds its sync's lock (another run took over): it may change nothing more."""


def _cancelled(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] in ("TransactionCanceledException", "ConditionalCheckFailedException")


class RunStore:
    """The runs table: the sync's lock, run items, waves, per-chunk results (written once) and rejected rows.

    ``pk = sync#NAME``: ``sk = lock`` (the run holding the sync, with the time it expires unless progress
    renews it), ``sk = run#ID`` (a run's status and counts). ``pk = run#ID``: ``sk = wave#K`` (the chunks
    and rows of each wave), ``sk = chunk#N`` (written once by the sender that delivered chunk N: the one
    write a chunk costs), ``sk = failure#N`` and ``sk = rejected#chunkN#I``.
    """

    def __init__(self, table: Any, clock: Any = time.time) -> None:
        self._table = table
        self._clock = clock

    @property
    def table(self) -> Any:
        """The runs table, for the other adapters that keep items there (``segsync.release``)."""
        return self._table

    # ------------------------------------------------------------------------------------------ the lock

    def begin(
        self,
        sync: str,
        run_id: str,
        seconds: int,
        *,
        trigger: str,
        full_resync: bool = False,
        destination: str | None = None,
        replacing: str | None = None,
    ) -> dict[str, Any] | None:
        """Take the sync's lock and create the run's item, in one transaction; None when taken.

        The lock never exists without its run, so a planner never mistakes a run being born for none.
        ``replacing``: take over from that run, whose lock has expired (it made no progress for the lock
        window). Otherwise only a free lock is taken. On failure, returns the lock that is held (its
        ``run_id`` and ``expires_at``).
        """
        now = self._clock()
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if replacing is not None:
            condition = {
                "ConditionExpression": "run_id = :old AND expires_at <= :now",
                "ExpressionAttributeValues": {":old": replacing, ":now": int(now)},
            }
        lock = {
            "pk": f"sync#{sync}",
            "sk": "lock",
            "run_id": run_id,
            "acquired_at": int(now),
            "expires_at": int(now) + seconds,
        }
        try:
            self._client().transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table.name, "Item": to_item(lock), **condition}},
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": to_item(self._run_item(sync, run_id, trigger, full_resync, destination, now)),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if not _cancelled(exc):
                raise
            return self.lock(sync) or {"run_id": None, "expires_at": 0}
        return None

    def lock(self, sync: str) -> dict[str, Any] | None:
        """The sync's lock item (``run_id``, ``expires_at``), or None when no run holds it."""
        item = self._table.get_item(Key={"pk": f"sync#{sync}", "sk": "lock"}, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def renew(self, sync: str, run_id: str, seconds: int) -> bool:
        """Push the lock's expiry ``seconds`` past now, if the run still holds it (progress was made)."""
        try:
            self._table.update_item(
                Key={"pk": f"sync#{sync}", "sk": "lock"},
                UpdateExpression="SET expires_at = :until",
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues={":run": run_id, ":until": int(self._clock()) + seconds},
            )
        except ClientError as exc:
            if _cancelled(exc):
                return False
            raise
        return True

    def last_scheduled(self, sync: str) -> float | None:
        """When the tick last started this sync (epoch seconds); kept without TTL, unlike runs."""
        item = self._table.get_item(Key={"pk": f"sync#{sync}", "sk": "schedule"}, ConsistentRead=True).get("Item")
        return None if item is None else float(item["last_started"])

    def claim_schedule(self, sync: str, seen: float | None, now: float) -> bool:
        """Record that a tick starts the sync now, unless another tick did since ``seen``.

        EventBridge Scheduler delivers at least once: a duplicated tick loses this conditional write.
        """
        condition = "attribute_not_exists(last_started)" if seen is None else "last_started = :seen"
        values: dict[str, Any] = {":now": Decimal(str(round(now, 3)))}
        if seen is not None:
            values[":seen"] = Decimal(str(round(seen, 3)))
        try:
            self._table.update_item(
                Key={"pk": f"sync#{sync}", "sk": "schedule"},
                UpdateExpression="SET last_started = :now",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_lock(self, sync: str, run_id: str) -> None:
        """Release the lock if this run still holds it (a newer run's lock is never touched)."""
        try:
            self._table.delete_item(
                Key={"pk": f"sync#{sync}", "sk": "lock"},
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues={":run": run_id},
            )
        except ClientError as exc:
            if not _cancelled(exc):
                raise

    # ------------------------------------------------------------------------------------------ run items

    def _lock_held(self, sync: str, holder: str) -> dict[str, Any]:
        """A transaction's check that ``holder`` still holds the sync's lock: every fenced write carries one."""
        return {
            "ConditionCheck": {
                "TableName": self._table.name,
                "Key": to_item({"pk": f"sync#{sync}", "sk": "lock"}),
                "ConditionExpression": "run_id = :holder",
                "ExpressionAttributeValues": to_item({":holder": holder}),
            }
        }

    def update_run(self, sync: str, run_id: str, *, holder: str | None = None, **fields: Any) -> None:
        """Set fields of a run's item, fenced: only while ``holder`` (default: the run) holds the sync's lock.

        Raises:
            LostLock: another run holds the lock; nothing was written.
        """
        values = {name: to_item(value) for name, value in fields.items() if value is not None}
        try:
            self._client().transact_write_items(
                TransactItems=[
                    self._lock_held(sync, holder or run_id),
                    {"Update": {"TableName": self._table.name, **_update(f"sync#{sync}", f"run#{run_id}", values)}},
                ]
            )
        except ClientError as exc:
            if _cancelled(exc):
                raise LostLock(f"run {run_id} of sync '{sync}' no longer holds the sync's lock") from None
            raise

    def claim_work(self, sync: str, run_id: str, worker: str, seconds: float) -> bool:
        """Become the one planner working on a run (checkpoints, waves, finalize) for ``seconds``.

        Two planner invocations acting on one run at once (a tick and a run request) would interleave
        their steps; the second finds the run claimed and leaves it. A claim dies with its invocation.
        """
        now = self._clock()
        try:
            self._table.update_item(
                Key={"pk": f"sync#{sync}", "sk": f"run#{run_id}"},
                UpdateExpression="SET worker = :me, worker_until = :until",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(worker_until) OR worker_until < :now)"
                ),
                ExpressionAttributeValues={
                    ":me": worker,
                    ":until": Decimal(str(round(now + seconds, 3))),
                    ":now": Decimal(str(round(now, 3))),
                },
            )
        except ClientError as exc:
            if _cancelled(exc):
                return False
            raise
        return True

    def release_work(self, sync: str, run_id: str, worker: str) -> None:
        try:
            self._table.update_item(
                Key={"pk": f"sync#{sync}", "sk": f"run#{run_id}"},
                UpdateExpression="REMOVE worker, worker_until",
                ConditionExpression="worker = :me",
                ExpressionAttributeValues={":me": worker},
            )
        except ClientError as exc:
            if not _cancelled(exc):
                raise

    def start(
        self, sync: str, run_id: str, trigger: str, full_resync: bool = False, destination: str | None = None
    ) -> None:
        """Record a run that holds no lock: one that could not even begin (its failure is recorded next)."""
        self._table.put_item(
            Item=to_item(self._run_item(sync, run_id, trigger, full_resync, destination, self._clock()))
        )

    def _run_item(
        self, sync: str, run_id: str, trigger: str, full_resync: bool, destination: str | None, now: float
    ) -> dict[str, Any]:
        return {
            "pk": f"sync#{sync}",
            "sk": f"run#{run_id}",
            "sync": sync,
            "run_id": run_id,
            "trigger": trigger,
            "full_resync": full_resync,
            **({"destination": destination} if destination else {}),
            "status": "planning",
            "started_at": Decimal(str(round(now, 3))),
            "expires_at": int(now) + RUN_TTL_S,
            **dict.fromkeys(RUN_COUNTERS, 0),
        }

    def skipped(self, sync: str, run_id: str, trigger: str, reason: str) -> None:
        """Record a requested run that did not start; never over a run item that exists (a duplicate invoke)."""
        now = self._clock()
        try:
            self._table.put_item(
                Item={
                    "pk": f"sync#{sync}",
                    "sk": f"run#{run_id}",
                    "sync": sync,
                    "run_id": run_id,
                    "trigger": trigger,
                    "status": "skipped",
                    "error": reason,
                    "started_at": Decimal(str(round(now, 3))),
                    "finished_at": Decimal(str(round(now, 3))),
                    "expires_at": int(now) + RUN_TTL_S,
                },
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def failed(self, sync: str, run_id: str, error: str) -> None:
        """Mark a run that never held a lock failed (one that did is failed with ``update_run``)."""
        self._table.update_item(
            **_update(
                f"sync#{sync}",
                f"run#{run_id}",
                {"status": "failed", "error": error, "finished_at": Decimal(str(round(self._clock(), 3)))},
            )
        )

    def run(self, sync: str, run_id: str) -> dict[str, Any]:
        item = self._table.get_item(Key={"pk": f"sync#{sync}", "sk": f"run#{run_id}"}, ConsistentRead=True)
        return from_item(item.get("Item", {}))

    def runs(self, sync: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs of a sync first."""
        page = self._table.query(
            KeyConditionExpression=Key("pk").eq(f"sync#{sync}") & Key("sk").begins_with("run#"),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_item(item) for item in page["Items"]]

    # ------------------------------------------------------------------------------------------ waves

    def put_wave(
        self, sync: str, run_id: str, wave: dict[str, Any], progress: dict[str, Any], after_chunks: int
    ) -> None:
        """Record a wave the planner queued, and the run's planning progress, in one fenced transaction.

        ``after_chunks``: the run's ``chunks_enqueued`` before this wave; a planner that queued the same
        wave meanwhile makes this one fail (its chunks are the same rows, so nothing is lost or doubled).

        Raises:
            LostLock: the run lost its lock, or another planner recorded this wave first.
        """
        values = {name: to_item(value) for name, value in progress.items()}
        update = _update(f"sync#{sync}", f"run#{run_id}", values)
        update["ConditionExpression"] = (
            "chunks_enqueued = :before OR (attribute_not_exists(chunks_enqueued) AND :before = :zero)"
        )
        update["ExpressionAttributeValues"].update(to_item({":before": after_chunks, ":zero": 0}))
        item = {
            "pk": f"run#{run_id}",
            "sk": f"wave#{wave['wave']:06d}",
            **wave,
            "expires_at": int(self._clock()) + RUN_TTL_S,
        }
        try:
            self._client().transact_write_items(
                TransactItems=[
                    self._lock_held(sync, run_id),
                    {"Update": {"TableName": self._table.name, **update}},
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": to_item(item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _cancelled(exc):
                raise LostLock(
                    f"run {run_id} of sync '{sync}' lost its lock, or wave {wave['wave']} was queued twice"
                ) from None
            raise

    def put_wave_totals(self, run_id: str, wave: int, totals: dict[str, int]) -> None:
        """Keep a checkpointed wave's totals on its item, so later ticks add them up without its chunks."""
        self._table.update_item(**_update(f"run#{run_id}", f"wave#{wave:06d}", totals))

    def waves(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The run's waves numbered past ``after``, in order."""
        return self._query(f"run#{run_id}", f"wave#{after + 1:06d}", "wave#999999")

    # ------------------------------------------------------------------------------------------ chunks

    def chunk_recorded(self, run_id: str, number: int) -> bool:
        """Whether a chunk was already delivered and counted (a redelivered SQS message)."""
        key = {"pk": f"run#{run_id}", "sk": f"chunk#{number:08d}"}
        return "Item" in self._table.get_item(Key=key, ConsistentRead=True)

    def record_chunk(self, run_id: str, number: int, tally: ChunkTally) -> bool:
        """Count a chunk exactly once: one conditional write, all a delivered chunk costs the runs table.

        The run's totals are the planner's to add up (``chunks``). Returns False when the chunk had been
        counted already.
        """
        try:
            self._table.put_item(
                Item={
                    "pk": f"run#{run_id}",
                    "sk": f"chunk#{number:08d}",
                    "rows": tally.rows,
                    "sent": tally.sent,
                    "rejected": tally.rejected,
                    "batches": tally.batches,
                    "bytes_sent": tally.bytes_sent,
                    "retries": tally.retries,
                    "expires_at": int(self._clock()) + RUN_TTL_S,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _cancelled(exc):
                return False
            raise
        return True

    def chunks(self, run_id: str, first: int, last: int) -> list[dict[str, Any]]:
        """The delivered chunks numbered ``first``..``last`` (each item as its sender wrote it)."""
        return self._query(f"run#{run_id}", f"chunk#{first:08d}", f"chunk#{last:08d}")

    def chunk_failed(self, sync: str, run_id: str, number: int, error: str) -> None:
        """Keep the latest delivery failure on the run, so its history says why it is not delivered.

        The chunk's own failure item counts its failed deliveries and keeps its first and last error,
        so a chunk parked in the DLQ can say why (``segsync dlq show``).
        """
        try:
            self._table.update_item(
                Key={"pk": f"sync#{sync}", "sk": f"run#{run_id}"},
                UpdateExpression="SET last_error = :error ADD failed_attempts :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":error": f"chunk {number}: {error}", ":one": 1},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        now = self._clock()
        self._table.update_item(
            Key={"pk": f"run#{run_id}", "sk": f"failure#{number:08d}"},
            UpdateExpression=(
                "SET #sync = :sync, chunk = :chunk, first_error = if_not_exists(first_error, :error), "
                "first_failed_at = if_not_exists(first_failed_at, :now), last_error = :error, "
                "last_failed_at = :now, expires_at = :expires ADD attempts :one"
            ),
            ExpressionAttributeNames={"#sync": "sync"},
            ExpressionAttributeValues={
                ":sync": sync,
                ":chunk": number,
                ":error": error,
                ":now": Decimal(str(round(now, 3))),
                ":expires": int(now) + RUN_TTL_S,
                ":one": 1,
            },
        )

    def chunk_failure(self, run_id: str, number: int) -> dict[str, Any] | None:
        """A chunk's failed deliveries (``attempts``, ``first_error``, ``last_error``), or None if none failed."""
        item = self._table.get_item(Key={"pk": f"run#{run_id}", "sk": f"failure#{number:08d}"}, ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    # ------------------------------------------------------------------------------------------ rejections

    def put_rejections(self, sync: str, run_id: str, number: int, rejections: list[Rejection]) -> None:
        """Keep a chunk's rejected rows until the planner moves them into the warehouse; deterministic keys
        make a redelivery overwrite, not add."""
        expires = int(self._clock()) + RUN_TTL_S
        with self._table.batch_writer() as batch:
            for i, rejection in enumerate(rejections):
                batch.put_item(
                    Item={
                        "pk": f"run#{run_id}",
                        "sk": f"rejected#chunk{number:08d}#{i:06d}",
                        "sync": sync,
                        "run_id": run_id,
                        "row_key": rejection.key,
                        "field": rejection.field,
                        "reason": rejection.reason,
                        "expires_at": expires,
                    }
                )

    def rejections(self, run_id: str, number: int) -> list[dict[str, Any]]:
        """The rejected rows of one delivered chunk."""
        return self._query(f"run#{run_id}", f"rejected#chunk{number:08d}#", f"rejected#chunk{number:08d}#~")

    # ------------------------------------------------------------------------------------------ plumbing

    def _query(self, pk: str, low: str, high: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk) & Key("sk").between(low, high)}
        while True:
            page = self._table.query(**kwargs)
            items.extend(from_item(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _client(self) -> Any:
        return self._table.meta.client


def _update(pk: str, sk: str, values: dict[str, Any]) -> dict[str, Any]:
    """An UpdateItem's arguments that SET each of ``values`` (for the table, or an Update in a transaction)."""
    return {
        "Key": {"pk": pk, "sk": sk},
        "UpdateExpression": "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
        "ExpressionAttributeNames": {f"#f{i}": name for i, name in enumerate(values)},
        "ExpressionAttributeValues": {f":v{i}": to_item(value, top=False) for i, value in enumerate(values.values())},
    }


class NotificationLog:
    """In the runs table: which notifications were sent (each once) and when each sync last committed.

    ``pk = sync#NAME``: ``sk = notified#RUN#EVENT#DESTINATION`` claims one message (with the runs' TTL);
    ``sk = health`` keeps the last committed run and when segsync started watching the sync (no TTL: a
    sync stale for longer than the runs are kept must still count as stale).
    """

    def __init__(self, table: Any) -> None:
        self._table = table

    def claim(self, sync: str, run_id: str, event: str, destination: str) -> bool:
        """Record that this message is being sent; False if it was already (a retried finalize, a duplicate tick)."""
        try:
            self._table.put_item(
                Item={
                    "pk": f"sync#{sync}",
                    "sk": f"notified#{run_id}#{event}#{destination}",
                    "expires_at": int(time.time()) + RUN_TTL_S,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def committed(self, sync: str, run_id: str, at: float) -> None:
        self._table.update_item(
            Key={"pk": f"sync#{sync}", "sk": "health"},
            UpdateExpression="SET last_committed_at = :at, last_committed_run = :run, "
            "watch_since = if_not_exists(watch_since, :at)",
            ExpressionAttributeValues={":at": Decimal(str(round(at, 3))), ":run": run_id},
        )

    def health(self, sync: str, now: float) -> dict[str, Any]:
        """The sync's ``last_committed_at``/``last_committed_run`` (if any) and ``watch_since`` (set now if new)."""
        item = self._table.update_item(
            Key={"pk": f"sync#{sync}", "sk": "health"},
            UpdateExpression="SET watch_since = if_not_exists(watch_since, :now)",
            ExpressionAttributeValues={":now": Decimal(str(round(now, 3)))},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return from_item(item)

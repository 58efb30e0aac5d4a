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
from segsync.errors import ConfigError

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


class RunStore:
    """The runs table: run items, per-chunk results (written once) and rejected records."""

    def __init__(self, table: Any, clock: Any = time.time) -> None:
        self._table = table
        self._clock = clock

    def acquire_lock(self, sync: str, run_id: str, seconds: int) -> dict[str, Any] | None:
        """Take the sync's lock for a new run, unless a live run holds it.

        Returns None when taken, else the lock item (its ``run_id`` and ``expires_at``) so the caller
        can finalize or abandon that run. One conditional write: two planners cannot both win.
        """
        now = int(self._clock())
        try:
            self._table.put_item(
                Item={
                    "pk": f"sync#{sync}",
                    "sk": "lock",
                    "run_id": run_id,
                    "acquired_at": now,
                    "expires_at": now + seconds,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            held = self._table.get_item(Key={"pk": f"sync#{sync}", "sk": "lock"}, ConsistentRead=True).get("Item")
            return from_item(held) if held else {"run_id": None, "expires_at": 0}
        return None

    def lock(self, sync: str) -> dict[str, Any] | None:
        """The sync's lock item (``run_id``, ``expires_at``), or None when no run holds it."""
        item = self._table.get_item(Key={"pk": f"sync#{sync}", "sk": "lock"}, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

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
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def set_status(self, sync: str, run_id: str, status: str, **fields: Any) -> None:
        """Move a run to ``status`` (committed, abandoned, ...) and record extra fields."""
        values = {"status": status, "finished_at": Decimal(str(round(self._clock(), 3))), **fields}
        names = {f"#f{i}": name for i, name in enumerate(values)}
        self._table.update_item(
            Key={"pk": f"sync#{sync}", "sk": f"run#{run_id}"},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": to_item(v) for i, v in enumerate(values.values())},
        )

    def start(
        self, sync: str, run_id: str, trigger: str, full_resync: bool = False, destination: str | None = None
    ) -> None:
        now = self._clock()
        self._table.put_item(
            Item={
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
                "chunks_done": 0,
                "sent": 0,
                "rejected_sender": 0,
                "batches": 0,
                "bytes_sent": 0,
                "retries": 0,
            }
        )

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

    def planned(self, sync: str, run_id: str, *, chunks: int, **counts: int | float) -> None:
        """Close planning: from now on the run completes when ``chunks_done`` reaches ``chunks``.

        ``counts``: rows_read, new, changed, unchanged, rejected_planner, planner_s.
        """
        values = {"status": "sending", "chunks_total": chunks, **counts}
        self._table.update_item(
            Key={"pk": f"sync#{sync}", "sk": f"run#{run_id}"},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames={f"#f{i}": name for i, name in enumerate(values)},
            ExpressionAttributeValues={f":v{i}": to_item(v) for i, v in enumerate(values.values())},
        )
        self._try_complete(sync, run_id)

    def failed(self, sync: str, run_id: str, error: str) -> None:
        self.set_status(sync, run_id, "failed", error=error)

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
            Key={"pk": f"run#{run_id}", "sk": f"failure#{number:06d}"},
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
        item = self._table.get_item(Key={"pk": f"run#{run_id}", "sk": f"failure#{number:06d}"}, ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    def chunk_recorded(self, run_id: str, number: int) -> bool:
        """Whether a chunk was already delivered and counted (a redelivered SQS message)."""
        key = {"pk": f"run#{run_id}", "sk": f"chunk#{number:06d}"}
        return "Item" in self._table.get_item(Key=key, ConsistentRead=True)

    def record_chunk(self, sync: str, run_id: str, number: int, tally: ChunkTally) -> bool:
        """Count a chunk exactly once (conditional write + counter update in one transaction).

        Returns False when the chunk had been counted already.
        """
        client = self._table.meta.client
        name = self._table.name
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": name,
                            "Item": {
                                "pk": f"run#{run_id}",
                                "sk": f"chunk#{number:06d}",
                                "rows": tally.rows,
                                "sent": tally.sent,
                                "rejected": tally.rejected,
                                "batches": tally.batches,
                                "expires_at": int(self._clock()) + RUN_TTL_S,
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": name,
                            "Key": {"pk": f"sync#{sync}", "sk": f"run#{run_id}"},
                            "UpdateExpression": (
                                "ADD chunks_done :one, sent :sent, rejected_sender :rej, batches :batches, "
                                "bytes_sent :bytes, retries :retries"
                            ),
                            "ExpressionAttributeValues": {
                                ":one": 1,
                                ":sent": tally.sent,
                                ":rej": tally.rejected,
                                ":batches": tally.batches,
                                ":bytes": tally.bytes_sent,
                                ":retries": tally.retries,
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        self._try_complete(sync, run_id)
        return True

    def _try_complete(self, sync: str, run_id: str) -> None:
        """Mark the run delivered once every planned chunk is counted; whoever gets there first wins."""
        try:
            self._table.update_item(
                Key={"pk": f"sync#{sync}", "sk": f"run#{run_id}"},
                UpdateExpression="SET #s = :done, finished_at = :now",
                ConditionExpression="#s = :sending AND chunks_done = chunks_total",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":done": "delivered",
                    ":sending": "sending",
                    ":now": Decimal(str(round(self._clock(), 3))),
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def put_rejections(self, sync: str, run_id: str, source: str, rejections: list[Rejection], start: int = 0) -> None:
        """Keep rejected records for inspection; deterministic keys make a redelivery overwrite, not add."""
        expires = int(self._clock()) + RUN_TTL_S
        with self._table.batch_writer() as batch:
            for i, rejection in enumerate(rejections, start=start):
                batch.put_item(
                    Item={
                        "pk": f"run#{run_id}",
                        "sk": f"rejected#{source}#{i:06d}",
                        "sync": sync,
                        "run_id": run_id,
                        "row_key": rejection.key,
                        "field": rejection.field,
                        "reason": rejection.reason,
                        "expires_at": expires,
                    }
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

    def rejections(self, run_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A run's rejected records (the first ``limit`` of them, or all)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"run#{run_id}") & Key("sk").begins_with("rejected#")
        }
        while limit is None or len(items) < limit:
            if limit is not None:
                kwargs["Limit"] = limit - len(items)
            page = self._table.query(**kwargs)
            items.extend(from_item(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items


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

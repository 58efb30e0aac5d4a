"""Plays Lambda's part locally: invokes the real handlers and feeds SQS to the sender as Lambda would."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from segsync.chunks import decode
from segsync.errors import ConfigError
from segsync.local import CHECKOUT
from segsync.observability import metrics
from segsync.state import FINAL_STATUSES

FUNCTIONS_DIR = CHECKOUT / "functions"
SENDER_TIMEOUT_S = 120
PLANNER_TIMEOUT_S = 900
DEFAULT_TICK_S = 2.0
"""How often a local run ticks the planner (EventBridge's part); ``--tick-seconds`` changes it."""
IDLE_POLL_S = 0.05


def load_handler(function: str) -> Callable[[dict[str, Any], Any], Any]:
    """Import ``functions/<function>/app.py`` by path: the very file Lambda runs."""
    path = FUNCTIONS_DIR / function / "app.py"
    if not path.is_file():
        raise ConfigError(f"local mode runs from a segsync checkout: {path} not found")
    spec = importlib.util.spec_from_file_location(f"segsync_function_{function}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that Powertools and segsync read."""

    function_name: str
    timeout_s: float
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@dataclass
class DrainStats:
    """What draining the queue took: invocations, records handed over, records reported failed."""

    invocations: int = 0
    records: int = 0
    failed_records: int = 0
    redelivered: int = 0
    ticks: int = 0
    seconds: float = 0.0


class LocalDriver:
    """Polls the chunk queue and invokes the sender with SQS-shaped events, like the event source mapping.

    Records the sender reports failed are made visible again after ``retry_delay_s`` (Lambda would
    wait out the visibility timeout); after the queue's maxReceiveCount they land in the DLQ.

    ``deliver_twice`` rehearses SQS's at-least-once delivery: a message it picks is, once handled,
    made visible again instead of deleted, so the queue hands it to the sender a second time (as
    when a visibility timeout lapses before the delete). Each message is redelivered at most once.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        planner: Callable[[dict[str, Any], Any], Any],
        sender: Callable[[dict[str, Any], Any], Any],
        *,
        batch_size: int = 5,
        retry_delay_s: int = 1,
        sender_timeout_s: float = SENDER_TIMEOUT_S,
        deliver_twice: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._planner = planner
        self._sender = sender
        self._batch_size = batch_size
        self._retry_delay_s = retry_delay_s
        self._sender_timeout_s = sender_timeout_s
        self._deliver_twice = deliver_twice
        self._redelivered: set[str] = set()

    def plan(self, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke the planner handler once with ``event``."""
        try:
            return self._planner(event, LambdaContext("segsync-planner", PLANNER_TIMEOUT_S))
        finally:
            metrics.clear_metrics()

    def drain(
        self,
        progress: Callable[[int], None] | None = None,
        tick: Callable[[], list[dict[str, Any]]] | None = None,
        tick_seconds: float = DEFAULT_TICK_S,
    ) -> DrainStats:
        """Hand chunks to the sender as they become visible, ticking the planner as EventBridge would.

        ``progress`` is told how many rows each sender invocation took off the queue.

        ``tick`` moves the live runs along (checkpoints, next waves, lock renewal, commit) and returns
        them; it is called every ``tick_seconds``, and at once whenever the queue runs dry. Draining ends
        when no run is live any more, or when nothing more can happen: the queue is empty (nothing
        delayed or in flight either) and every live run has queued all of its rows (its chunks were
        delivered or parked in the DLQ).
        """
        stats = DrainStats()
        started = time.monotonic()
        last_tick = started
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=self._batch_size,
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if messages:
                self._deliver(messages, stats, progress)
            idle = not messages and self._queue_empty()
            if tick is None:
                if idle:
                    break
            elif idle or time.monotonic() - last_tick >= tick_seconds:
                live = [run for run in tick() if run.get("status") not in FINAL_STATUSES]
                stats.ticks += 1
                last_tick = time.monotonic()
                if not live or (self._queue_empty() and all(run.get("planning_done") for run in live)):
                    break
            if not messages:
                time.sleep(IDLE_POLL_S)
        stats.seconds = time.monotonic() - started
        return stats

    def _deliver(
        self, messages: list[dict[str, Any]], stats: DrainStats, progress: Callable[[int], None] | None
    ) -> None:
        """One sender invocation on ``messages``; delete what it handled, release what it reported failed."""
        failed = self._invoke_sender(messages)
        stats.invocations += 1
        stats.records += len(messages)
        stats.failed_records += len(failed)
        rows = 0
        for message in messages:
            if message["MessageId"] in failed:
                self._release(message, self._retry_delay_s)
            elif self._redeliver(message):
                stats.redelivered += 1
                self._release(message, 0)
            else:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
                if progress is not None:
                    rows += len(decode(message["Body"]).rows)
        if progress is not None:
            progress(rows)

    def _release(self, message: dict[str, Any], delay_s: int) -> None:
        """Make a received message visible again after ``delay_s`` (0: at once)."""
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay_s
        )

    def _redeliver(self, message: dict[str, Any]) -> bool:
        if self._deliver_twice is None or message["MessageId"] in self._redelivered:
            return False
        if not self._deliver_twice(message):
            return False
        self._redelivered.add(message["MessageId"])
        return True

    def _invoke_sender(self, messages: list[dict[str, Any]]) -> set[str]:
        event = {"Records": [self._record(m) for m in messages]}
        try:
            response = self._sender(event, LambdaContext("segsync-sender", self._sender_timeout_s)) or {}
        finally:
            # Powertools keeps (and at 100 values prints) metrics it is told not to publish: locally
            # each invocation starts from an empty buffer, as a Lambda's would after its flush.
            metrics.clear_metrics()
        return {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": "us-east-1",
        }

    def _queue_empty(self) -> bool:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values()) == 0

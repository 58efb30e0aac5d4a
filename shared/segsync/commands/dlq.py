"""``segsync dlq show`` and ``segsync dlq redrive``: chunks parked in the dead-letter queue, and sending them back.

On AWS (``--stack``) a redrive is an SQS message move task from the DLQ to the chunk queue, as the
console's "Start DLQ redrive" does. moto has no move task, so against a local stack (``--endpoint``)
the messages are copied back one by one (receive, send the same body, then delete). Either way the
chunk goes back unchanged: same run, same chunk number, same rows, so the same messageIds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import boto3

from segsync import deployed
from segsync.chunks import decode
from segsync.commands import EXIT_OK, EXIT_RUN_FAILED, print_json, table
from segsync.errors import ConfigError
from segsync.store import RunStore

PEEK_VISIBILITY_S = 30
"""How long ``show`` hides a message it reads; it makes each one visible again as soon as it is done."""
RECEIVE_MAX = 10
MOVE_POLL_S = 2.0
ERROR_CHARS = 160


@dataclass(frozen=True)
class Queues:
    """Where the chunks and their dead letters are, and how a redrive moves them.

    Attributes:
        where: for messages, e.g. ``stack segsync-prod`` or ``local stack http://127.0.0.1:5000``.
        move_task: whether SQS message move tasks exist there (AWS yes, moto no).
    """

    where: str
    sqs: Any
    queue_url: str
    dead_letter_queue_url: str
    runs: RunStore
    move_task: bool
    redrive_hint: str


@dataclass
class ParkedChunk:
    """A chunk in the DLQ, described without its rows."""

    message_id: str
    sync: str | None
    run_id: str | None
    chunk: int | None
    rows: int | None
    receives: int
    """SQS's ApproximateReceiveCount before this look (earlier looks, by the console or this command, count too)."""
    failures: int | None
    """Failed deliveries the sender recorded for this chunk (the runs table's count)."""
    first_error: str | None
    last_error: str | None
    run_status: str | None
    delivered: bool
    """The chunk was delivered and counted after all (a duplicate copy): redriving it sends nothing."""


@dataclass
class RedriveResult:
    """How a redrive went: ``copy`` (local) moved ``moved`` chunks; a ``move-task`` (AWS) may still run."""

    method: str
    moved: int | None = None
    dropped_stale: int = 0
    """Chunks not moved but deleted: their run no longer holds its sync's lock (or they were delivered since)."""
    source_arn: str | None = None
    task_handle: str | None = None
    status: str | None = None
    failure: str | None = None


# ---------------------------------------------------------------------------------------- targets


def stack_queues(stack: str) -> Queues:
    """The chunk queue, its DLQ and the runs table of a deployed stack, from its Outputs.

    ``segsync.deployed.stack_outputs`` checks the stack and names the runs table; its StackOutputs do
    not carry the queues yet, so their Outputs (QueueUrl, DeadLetterQueueUrl) are read here.
    """
    outputs = deployed.stack_outputs(stack)
    queues = _outputs(stack, ("QueueUrl", "DeadLetterQueueUrl"))
    with deployed.aws_errors(f"stack '{stack}'"):
        return Queues(
            where=f"stack {stack}",
            sqs=deployed.aws_client("sqs"),
            queue_url=queues["QueueUrl"],
            dead_letter_queue_url=queues["DeadLetterQueueUrl"],
            runs=RunStore(deployed.aws_table(outputs.runs_table)),
            move_task=True,
            redrive_hint=f"segsync dlq redrive --stack {stack}",
        )


def _outputs(stack: str, keys: tuple[str, ...]) -> dict[str, str]:
    with deployed.aws_errors(f"stack '{stack}'"):
        [described] = deployed.aws_client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise ConfigError(f"stack '{stack}' has no output {', '.join(missing)}: is it a segsync stack?")
    return outputs


def local_queues(
    endpoint: str, queue_url: str | None = None, dlq_url: str | None = None, runs_table: str | None = None
) -> Queues:
    """A local stack (moto's server: ``segsync local-stack``, or one a test started) at ``endpoint``.

    Queue URLs and the runs table default to the names the local stack creates.
    """
    from segsync.local.stack import DEAD_LETTER_QUEUE, QUEUE, REGION, RUNS_TABLE  # moto: a local-only extra

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    sqs = session.client("sqs", endpoint_url=endpoint)
    with deployed.aws_errors(f"local stack {endpoint}"):
        queue_url = queue_url or sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
        dlq_url = dlq_url or sqs.get_queue_url(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
    table = session.resource("dynamodb", endpoint_url=endpoint).Table(runs_table or RUNS_TABLE)
    return Queues(
        where=f"local stack {endpoint}",
        sqs=sqs,
        queue_url=queue_url,
        dead_letter_queue_url=dlq_url,
        runs=RunStore(table),
        move_task=False,
        redrive_hint=f"segsync dlq redrive --endpoint {endpoint}",
    )


# ---------------------------------------------------------------------------------------- show


def parked_chunks(queues: Queues, limit: int = 100) -> list[ParkedChunk]:
    """Up to ``limit`` chunks in the DLQ, each looked up in the runs table; the DLQ is left as it was.

    Reading an SQS message hides it for a while and counts a receive; each one read is made visible
    again at once, so a redrive right after sees them all. Reading stops at the queue's approximate
    depth, so an SQS long poll is waited out only when the depth is not yet up to date.
    """
    visible = int(
        queues.sqs.get_queue_attributes(
            QueueUrl=queues.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while len(seen) < min(limit, max(visible, 1)):
            messages = queues.sqs.receive_message(
                QueueUrl=queues.dead_letter_queue_url,
                MaxNumberOfMessages=min(RECEIVE_MAX, limit - len(seen)),
                VisibilityTimeout=PEEK_VISIBILITY_S,
                WaitTimeSeconds=1 if queues.move_task else 0,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            handles.extend(m["ReceiptHandle"] for m in messages)
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update((m["MessageId"], m) for m in fresh)
    finally:
        _release(queues, handles)
    return [_describe(queues, message) for message in seen.values()]


def _release(queues: Queues, handles: list[str]) -> None:
    for start in range(0, len(handles), RECEIVE_MAX):
        queues.sqs.change_message_visibility_batch(
            QueueUrl=queues.dead_letter_queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + RECEIVE_MAX])
            ],
        )


def _describe(queues: Queues, message: dict[str, Any]) -> ParkedChunk:
    receives = max(0, int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)) - 1)
    try:
        chunk = decode(message["Body"])
    except ValueError as exc:
        return ParkedChunk(message["MessageId"], None, None, None, None, receives, None, str(exc), None, None, False)
    sync = chunk.sync.get("name")
    run = queues.runs.run(sync, chunk.run_id) if sync else {}
    failure = queues.runs.chunk_failure(chunk.run_id, chunk.number) or {}
    # Before per-chunk failures were recorded, the run's last error was all there was.
    last_error = failure.get("last_error") or run.get("last_error")
    return ParkedChunk(
        message_id=message["MessageId"],
        sync=sync,
        run_id=chunk.run_id,
        chunk=chunk.number,
        rows=len(chunk.rows),
        receives=receives,
        failures=failure.get("attempts"),
        first_error=failure.get("first_error") or last_error,
        last_error=last_error,
        run_status=run.get("status"),
        delivered=queues.runs.chunk_recorded(chunk.run_id, chunk.number),
    )


def dead_letter_depth(queues: Queues) -> int:
    attributes = queues.sqs.get_queue_attributes(
        QueueUrl=queues.dead_letter_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


# ---------------------------------------------------------------------------------------- redrive


def redrive(
    queues: Queues,
    *,
    wait: bool = False,
    timeout_s: float = 600.0,
    max_per_second: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RedriveResult:
    """Send every chunk in the DLQ back to the chunk queue, unchanged; drop the stale ones first.

    A chunk whose run was abandoned, failed or superseded meanwhile would only be dropped by a sender
    (a newer run may have sent newer values): it is deleted here, and counted.
    """
    dropped = _drop_stale(queues)
    if not queues.move_task:
        return RedriveResult(method="copy", moved=_copy_back(queues), dropped_stale=dropped, status="COMPLETED")
    source = _arn(queues, queues.dead_letter_queue_url)
    task = queues.sqs.start_message_move_task(
        SourceArn=source,
        DestinationArn=_arn(queues, queues.queue_url),
        **({"MaxNumberOfMessagesPerSecond": max_per_second} if max_per_second else {}),
    )
    result = RedriveResult(
        method="move-task", dropped_stale=dropped, source_arn=source, task_handle=task["TaskHandle"], status="RUNNING"
    )
    deadline = time.monotonic() + timeout_s
    while wait:
        [latest] = queues.sqs.list_message_move_tasks(SourceArn=source, MaxResults=1)["Results"] or [{}]
        result.status = latest.get("Status", result.status)
        result.moved = latest.get("ApproximateNumberOfMessagesMoved", result.moved)
        result.failure = latest.get("FailureReason")
        if result.status != "RUNNING" or time.monotonic() >= deadline:
            break
        sleep(MOVE_POLL_S)
    return result


def _arn(queues: Queues, url: str) -> str:
    return queues.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _drop_stale(queues: Queues) -> int:
    """Delete the parked chunks a sender would drop unsent; make the others visible again at once."""
    dropped = 0
    keep: list[str] = []
    try:
        for message in _each_parked(queues):
            if _stale(queues, message["Body"]):
                queues.sqs.delete_message(QueueUrl=queues.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
                dropped += 1
            else:
                keep.append(message["ReceiptHandle"])
    finally:
        _release(queues, keep)
    return dropped


def _each_parked(queues: Queues, **receive: Any) -> Iterator[dict[str, Any]]:
    """Each DLQ message once, hidden for PEEK_VISIBILITY_S, until a receive brings none not seen already.

    The DLQ has no end marker: a receive that returns nothing, or only messages already handled (back
    early from their visibility timeout), is taken as the end. ``receive``: more receive_message arguments.
    """
    seen: set[str] = set()
    while True:
        messages = queues.sqs.receive_message(
            QueueUrl=queues.dead_letter_queue_url,
            MaxNumberOfMessages=RECEIVE_MAX,
            VisibilityTimeout=PEEK_VISIBILITY_S,
            WaitTimeSeconds=0,
            **receive,
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            yield message


def _stale(queues: Queues, body: str) -> bool:
    """Whether a sender would drop this chunk unsent: its run no longer holds its sync's lock, or it was
    delivered and counted since. A message that is not a chunk is kept (it fails, named, in the sender)."""
    try:
        chunk = decode(body)
    except ValueError:
        return False
    lock = queues.runs.lock(chunk.sync.get("name", ""))
    return lock is None or lock["run_id"] != chunk.run_id or queues.runs.chunk_recorded(chunk.run_id, chunk.number)


def _copy_back(queues: Queues) -> int:
    """Receive from the DLQ, send the same body to the chunk queue, then delete: never lost, at worst twice.

    One message per SendMessage: a chunk may be close to 1 MiB, the limit of a whole SendMessageBatch.
    """
    moved = 0
    for message in _each_parked(queues, MessageAttributeNames=["All"]):
        attributes = message.get("MessageAttributes")
        queues.sqs.send_message(
            QueueUrl=queues.queue_url,
            MessageBody=message["Body"],
            **({"MessageAttributes": attributes} if attributes else {}),
        )
        queues.sqs.delete_message(QueueUrl=queues.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
        moved += 1
    return moved


# ---------------------------------------------------------------------------------------- command line


def register(commands: Any) -> None:
    where = argparse.ArgumentParser(add_help=False)
    target = where.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", metavar="NAME", help="a deployed CloudFormation stack")
    target.add_argument(
        "--endpoint", metavar="URL", help="a local stack: moto's server (segsync local-stack serves one on :5000)"
    )
    where.add_argument("--queue-url", help="with --endpoint: the chunk queue (default: the local stack's)")
    where.add_argument("--dlq-url", help="with --endpoint: the dead-letter queue (default: the local stack's)")
    where.add_argument("--runs-table", help="with --endpoint: the runs table (default: the local stack's)")
    where.add_argument("--json", action="store_true", help="machine-readable output")

    dlq = commands.add_parser("dlq", help="chunks parked in the dead-letter queue: show them, send them back")
    actions = dlq.add_subparsers(required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        parents=[where],
        help="list the parked chunks: sync, run, chunk, receives, first error (never row contents)",
    )
    show.add_argument("--limit", type=int, default=100, help="at most this many chunks (default 100)")
    show.set_defaults(command=show_parked)
    again = actions.add_parser(
        "redrive",
        parents=[where],
        help="move every parked chunk back to the chunk queue (AWS: an SQS message move task)",
    )
    again.add_argument("--wait", action="store_true", help="on AWS: wait until the move task has finished")
    again.add_argument("--timeout", type=float, default=600.0, help="with --wait: give up after this many seconds")
    again.add_argument("--max-per-second", type=int, metavar="N", help="on AWS: the move task's pace")
    again.set_defaults(command=redrive_parked)


def queues_for(args: argparse.Namespace) -> Queues:
    """The queues the arguments name: a deployed stack's, or a local stack's."""
    if args.stack:
        if args.queue_url or args.dlq_url or args.runs_table:
            raise ConfigError("--queue-url, --dlq-url and --runs-table go with --endpoint; a stack names its own")
        return stack_queues(args.stack)
    return local_queues(args.endpoint, args.queue_url, args.dlq_url, args.runs_table)


def show_parked(args: argparse.Namespace) -> int:
    queues = queues_for(args)
    with deployed.aws_errors(f"dead-letter queue of {queues.where}"):
        parked = parked_chunks(queues, args.limit)
        depth = dead_letter_depth(queues)
    if args.json:
        print_json(
            {
                "ok": True,
                "where": queues.where,
                "dead_letter_queue": queues.dead_letter_queue_url,
                "approximate_depth": depth,
                "parked": [asdict(p) for p in parked],
            }
        )
        return EXIT_OK
    if not parked:
        print(f"dead-letter queue of {queues.where}: empty")
        return EXIT_OK
    print(f"dead-letter queue of {queues.where}: {depth} chunk(s) parked")
    header = ("sync", "run", "run status", "chunk", "rows", "receives", "failures")
    rows = [
        (p.sync or "?", p.run_id or "?", p.run_status or "?", _n(p.chunk), _n(p.rows), p.receives, _n(p.failures))
        for p in parked
    ]
    print("\n".join(table(header, rows, left=3)))
    for p in parked:
        name = f"{p.sync} chunk {p.chunk}" if p.chunk is not None else f"message {p.message_id}"
        if p.first_error:
            print(f"{name}: first error: {_short(p.first_error)}")
        if p.last_error and p.last_error != p.first_error:
            print(f"{name}: last error: {_short(p.last_error)}")
        if p.delivered:
            print(f"{name}: delivered and counted since (a duplicate copy): a redrive sends nothing")
        elif p.run_status and p.run_status != "sending":
            print(f"{name}: run is {p.run_status}: a redrive drops this chunk (its rows go out with the next run)")
    print(f"fix the cause, then: {queues.redrive_hint}")
    return EXIT_OK


def redrive_parked(args: argparse.Namespace) -> int:
    queues = queues_for(args)
    with deployed.aws_errors(f"redriving the dead-letter queue of {queues.where}"):
        result = redrive(queues, wait=args.wait, timeout_s=args.timeout, max_per_second=args.max_per_second)
    failed = result.status in {"FAILED", "CANCELLED"}
    if args.json:
        print_json({"ok": not failed, "where": queues.where, **asdict(result)})
        return EXIT_RUN_FAILED if failed else EXIT_OK
    if result.dropped_stale:
        print(
            f"dropped {result.dropped_stale} stale chunk(s): their runs ended or were superseded, so a sender "
            "would drop them unsent (their rows go out with the newer run)"
        )
    if result.method == "copy":
        print(f"moved {result.moved} chunk(s) back to the chunk queue of {queues.where}")
    elif result.status == "RUNNING":
        moved = f", {result.moved} moved so far" if result.moved is not None else ""
        print(f"started moving the dead-letter queue back to the chunk queue of {queues.where}{moved}")
        print(f"  task: {result.task_handle}")
        print(f"  progress: aws sqs list-message-move-tasks --source-arn {result.source_arn}")
    else:
        print(f"move task {result.status.lower() if result.status else 'ended'}: {result.moved or 0} chunk(s) moved")
        if result.failure:
            print(f"  reason: {result.failure}")
    return EXIT_RUN_FAILED if failed else EXIT_OK


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _short(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"

"""The sender Lambda handler under moto, posting over loopback to the capture endpoint."""

from __future__ import annotations

import os

import orjson
import pytest

from segsync.chunks import decode
from segsync.local.capture import FaultPlan, read_captured
from segsync.local.driver import LambdaContext
from segsync.store import RunStore

from ..conftest import EVENTS
from .conftest import SAMPLE_RUN, SAMPLE_SYNC, begin_run, counted


def _context() -> LambdaContext:
    return LambdaContext("segsync-sender", timeout_s=120)


@pytest.fixture
def sample_run(stack):
    """The run the sample chunk belongs to, as the planner would have recorded it."""
    runs = RunStore(stack.table(os.environ["RUNS_TABLE"]))
    begin_run(runs, SAMPLE_SYNC, SAMPLE_RUN)
    return runs


def test_the_sample_sqs_event_is_delivered_and_counted(stack, sample_run, capture, sqs_event_factory, sender_handler):
    # Given the sample SQS event (one chunk of three users)
    event = sqs_event_factory()

    # When the sender handles it
    response = sender_handler(event, _context())

    # Then no record failed, Segment got three identify calls, and the chunk is counted
    assert response == {"batchItemFailures": []}
    messages = read_captured(capture.out_path)
    assert [m["userId"] for m in messages] == ["user_000001", "user_000002", "user_000003"]
    assert all(m["type"] == "identify" and m["messageId"].startswith("segsync-") for m in messages)
    assert "email" not in messages[2]["traits"]
    assert counted(sample_run, SAMPLE_RUN) == {"chunks": 1, "rows": 3, "sent": 3, "rejected": 0, "batches": 1}


def test_a_chunk_delivered_twice_is_sent_and_counted_once(
    stack, sample_run, capture, sqs_event_factory, sender_handler
):
    # Given SQS delivers the same chunk in two records (at-least-once delivery)
    event = sqs_event_factory(copies=2)

    # When the sender handles both
    response = sender_handler(event, _context())

    # Then both records succeed, but the messages went out and were counted only once
    assert response == {"batchItemFailures": []}
    assert capture.messages == 3
    assert counted(sample_run, SAMPLE_RUN)["sent"] == 3


def test_a_chunk_whose_run_no_longer_holds_its_lock_is_dropped_unsent(
    stack, capture, sqs_event_factory, sender_handler, monkeypatch
):
    # Given the sample chunk's run was abandoned, and a newer run of its sync holds the lock (it may have sent
    # newer values of these very users already)
    runs = RunStore(stack.table(os.environ["RUNS_TABLE"]))
    begin_run(runs, SAMPLE_SYNC, "20991231T000000Z-newer0")
    event = sqs_event_factory()
    metrics: list[str] = []
    monkeypatch.setattr("segsync.handlers.metrics.add_metric", lambda name, **kwargs: metrics.append(name))

    # When the sender gets it (redriven from the DLQ, say)
    response = sender_handler(event, _context())

    # Then it is acknowledged without a request to Segment, counted as stale, and not counted as delivered
    assert response == {"batchItemFailures": []}
    assert capture.requests == 0 and counted(runs, SAMPLE_RUN)["chunks"] == 0
    assert "StaleChunksDropped" in metrics


def test_a_segment_outage_reports_the_record_failed_and_counts_nothing(
    tmp_path, stack, sample_run, sqs_event_factory, sender_handler
):
    # Given Segment answers 503 to everything and the invocation has little time left
    from segsync.local.capture import CaptureServer

    with CaptureServer(tmp_path / "down.ndjson", faults=FaultPlan(error_rate=1.0, error_status=503)) as down:
        event = sqs_event_factory(endpoint=down.url)
        context = LambdaContext("segsync-sender", timeout_s=6.5)

        # When the sender handles the chunk
        response = sender_handler(event, context)

    # Then the record is reported failed (SQS will redeliver it) and nothing is counted as sent
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert counted(sample_run, SAMPLE_RUN)["chunks"] == 0


def test_a_missing_write_key_fails_the_record_with_a_clear_log_line(
    stack, sample_run, sqs_event_factory, sender_handler, monkeypatch, caplog
):
    # Given the write key's environment variable is not set
    event = sqs_event_factory()
    monkeypatch.delenv("SEGMENT_WRITE_KEY")

    # When the sender handles the chunk
    response = sender_handler(event, _context())

    # Then the record failed and the log says which secret is missing
    assert len(response["batchItemFailures"]) == 1
    errors = [getattr(r, "error", "") for r in caplog.records if r.levelname == "ERROR"]
    assert any("environment variable SEGMENT_WRITE_KEY is not set" in e for e in errors)


def test_one_message_segment_refuses_is_rejected_and_the_rest_delivered(
    tmp_path, stack, sample_run, sqs_event_factory, sender_handler
):
    # Given Segment answers 400 to any batch holding user_000002
    from segsync.local.capture import CaptureServer

    faults = FaultPlan(reject_if=lambda m: m.get("userId") == "user_000002")
    with CaptureServer(tmp_path / "picky.ndjson", faults=faults) as picky:
        event = sqs_event_factory(endpoint=picky.url)

        # When the sender handles the chunk
        response = sender_handler(event, _context())
        delivered = [m["userId"] for m in read_captured(picky.out_path)]

    # Then the batch is bisected: two users delivered, the refused one is a rejected record with its key
    assert response == {"batchItemFailures": []}
    assert sorted(delivered) == ["user_000001", "user_000003"]
    rejections = sample_run.rejections(SAMPLE_RUN, 1)
    assert [(r["row_key"], r["field"]) for r in rejections] == [("user_000002", "message")]
    assert (counted(sample_run, SAMPLE_RUN)["sent"], counted(sample_run, SAMPLE_RUN)["rejected"]) == (2, 1)


AWS_SECRET_CANARY = "aws-secret-canary-7f3e9b1c"


@pytest.mark.parametrize(
    ("elsewhere_too", "write_key", "reason"),
    [
        (True, {"env": "AWS_SECRET_ACCESS_KEY"}, "must start with SEGMENT_ (e.g. SEGMENT_WRITE_KEY), not AWS_SECRET"),
        (True, {"secret": "segsync/warehouse/snowflake"}, "destination refused: the sender may not post to"),
        (False, {"secret": "segsync/warehouse/snowflake"}, "is not under the sender's prefix 'segsync/segment/'"),
    ],
    ids=["own-aws-key-elsewhere", "warehouse-secret-elsewhere", "warehouse-secret-to-segment"],
)
def test_a_forged_chunk_sends_nothing_anywhere_and_says_why_on_the_run(
    tmp_path,
    stack,
    sample_run,
    capture,
    sqs_event_factory,
    sender_handler,
    monkeypatch,
    caplog,
    capfd,
    elsewhere_too,
    write_key,
    reason,
):
    # Given a chunk forged to post the sender's own AWS secret key, or a warehouse secret, to a listening
    # host of the forger's choosing (or to the allowed endpoint)
    from segsync.local.capture import CaptureServer

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_CANARY)
    stack.client("secretsmanager").create_secret(Name="segsync/warehouse/snowflake", SecretString=AWS_SECRET_CANARY)
    with CaptureServer(tmp_path / "elsewhere.ndjson") as elsewhere:
        forged = {"write_key": write_key, **({"endpoint": elsewhere.url} if elsewhere_too else {})}
        event = sqs_event_factory(forged=forged)

        # When the sender handles it
        response = sender_handler(event, _context())

        # Then nothing was sent anywhere, the record is reported failed (it goes to the DLQ, alarmed),
        # the run says why, and the secret appears in no log line
        assert (elsewhere.requests, capture.requests) == (0, 0)
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert counted(sample_run, SAMPLE_RUN)["chunks"] == 0
    assert reason in sample_run.run(SAMPLE_SYNC, SAMPLE_RUN)["last_error"]
    assert reason in sample_run.chunk_failure(SAMPLE_RUN, 1)["last_error"]
    out, err = capfd.readouterr()
    logged = out + err + "\n".join(repr(vars(r)) + r.getMessage() for r in caplog.records)
    assert AWS_SECRET_CANARY not in logged


def test_a_chunk_to_an_endpoint_the_stack_does_not_allow_is_refused(
    tmp_path, stack, sample_run, capture, sqs_event_factory, sender_handler
):
    # Given a chunk whose destination is a listening endpoint that SEGMENT_ALLOWED_ENDPOINTS does not name,
    # its write key a proper one
    from segsync.local.capture import CaptureServer

    with CaptureServer(tmp_path / "elsewhere.ndjson") as elsewhere:
        event = sqs_event_factory(forged={"endpoint": elsewhere.url})

        # When the sender handles it
        response = sender_handler(event, _context())
        requests, url = elsewhere.requests, elsewhere.url

    # Then nothing reached it, and the run names the endpoint and where the sender may post
    assert requests == 0 and len(response["batchItemFailures"]) == 1
    error = sample_run.run(SAMPLE_SYNC, SAMPLE_RUN)["last_error"]
    assert f"the sender may not post to {url}" in error and capture.url in error


def test_a_rotated_write_key_is_read_again_from_secrets_manager_on_401(
    tmp_path, stack, sample_run, sqs_event_factory, sender_handler
):
    # Given a write key in Secrets Manager that the sender has cached, then rotated, and Segment refusing
    # the old key once
    from aws_lambda_powertools.utilities import parameters

    from segsync.local.capture import CaptureServer

    secrets = stack.client("secretsmanager")
    secrets.create_secret(Name="segsync/segment/demo", SecretString="old-write-key")
    assert parameters.get_secret("segsync/segment/demo", max_age=300) == "old-write-key"  # cached, as if warm
    secrets.put_secret_value(SecretId="segsync/segment/demo", SecretString="new-write-key")
    with CaptureServer(tmp_path / "rotated.ndjson", faults=FaultPlan(sequence=[401])) as rotated:
        event = sqs_event_factory(endpoint=rotated.url, forged={"write_key": {"secret": "segsync/segment/demo"}})

        # When the sender handles the chunk
        response = sender_handler(event, _context())
        requests = rotated.requests

    # Then the 401 made it read the secret past its cache and retry once with the new key: delivered
    assert response == {"batchItemFailures": []}
    assert requests == 2
    assert counted(sample_run, SAMPLE_RUN)["sent"] == 3


def test_the_sample_chunk_is_a_valid_chunk():
    # Given the committed sample event, When its body is decoded, Then it is a chunk of the sample sync (the
    # demo's users, under a name of their own)
    body = orjson.loads((EVENTS / "sender-sqs.json").read_bytes())["Records"][0]["body"]
    chunk = decode(body)
    assert (chunk.run_id, chunk.number, chunk.sync["name"], len(chunk.rows)) == (
        SAMPLE_RUN,
        1,
        SAMPLE_SYNC,
        3,
    )

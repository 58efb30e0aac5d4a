"""``segsync dlq show`` / ``segsync dlq redrive`` against a stack in moto.

A small CloudFormation stack in moto stands in for the SAM template: the runs table, the chunk queue
with its redrive policy, its DLQ, and the Outputs the CLI reads. moto has no SQS message move task,
so the AWS redrive path is checked at the boto boundary with botocore's Stubber (the local path, a
copy, runs for real in tests/e2e/test_faults.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from segsync import deployed
from segsync.chunks import decode
from segsync.cli import main
from segsync.commands import dlq
from segsync.store import RunStore

from ..conftest import EVENTS
from .conftest import SAMPLE_SYNC
from .stand_in import table_resource

STACK = "segsync-dlq-test"
SAMPLE = orjson.loads((EVENTS / "sender-sqs.json").read_bytes())["Records"][0]["body"]


STAND_IN = {
    "Resources": {
        "SyncsTable": table_resource(("kind", "name")),
        "RunsTable": table_resource(("pk", "sk")),
        "ChunkDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "ChunkQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["ChunkDeadLetterQueue", "Arn"]},
                    "maxReceiveCount": 5,
                }
            },
        },
    },
    "Outputs": {
        "SyncsTableName": {"Value": {"Ref": "SyncsTable"}},
        "RunsTableName": {"Value": {"Ref": "RunsTable"}},
        "QueueUrl": {"Value": {"Ref": "ChunkQueue"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "ChunkDeadLetterQueue"}},
        "PlannerFunctionName": {"Value": "segsync-dlq-test-planner"},
    },
}


class Deployed:
    def __init__(self) -> None:
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
        }
        self.queue_url = outputs["QueueUrl"]
        self.dlq_url = outputs["DeadLetterQueueUrl"]
        self.runs = RunStore(boto3.resource("dynamodb").Table(outputs["RunsTableName"]))
        self.sqs = boto3.client("sqs")

    def arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def stack() -> Iterator[Deployed]:
    with mock_aws():
        boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=orjson.dumps(STAND_IN).decode())
        yield Deployed()


@pytest.fixture
def parked(stack: Deployed) -> Any:
    """The sample chunk, failed twice by the sender, then dead-lettered by SQS."""
    chunk = decode(SAMPLE)
    assert stack.runs.begin(SAMPLE_SYNC, chunk.run_id, 3_600, trigger="schedule") is None
    stack.runs.update_run(SAMPLE_SYNC, chunk.run_id, status="sending", rows_read=3)
    first = "Segment batch not delivered after 4 attempt(s): last failure HTTP 503"
    last = "Segment batch not delivered after 2 attempt(s): last failure ConnectionError"
    stack.runs.chunk_failed(SAMPLE_SYNC, chunk.run_id, chunk.number, first)
    stack.runs.chunk_failed(SAMPLE_SYNC, chunk.run_id, chunk.number, last)
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=SAMPLE)
    return chunk


def test_show_names_the_parked_chunk_its_failures_and_first_error(stack, parked, capsys):
    # When the DLQ of the stack is shown as JSON
    code = main(["dlq", "show", "--stack", STACK, "--json"])

    # Then the chunk is described from its header and the runs table, and left in the DLQ for a redrive
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0 and out["approximate_depth"] == 1
    [chunk] = out["parked"]
    assert (chunk["sync"], chunk["run_id"], chunk["chunk"], chunk["rows"]) == (SAMPLE_SYNC, parked.run_id, 1, 3)
    assert (chunk["failures"], chunk["run_status"], chunk["delivered"]) == (2, "sending", False)
    assert chunk["first_error"].endswith("HTTP 503") and chunk["last_error"].endswith("ConnectionError")
    assert stack.depth(stack.dlq_url) == 1


def test_show_prints_no_row_contents(stack, parked, capsys):
    # When shown as text
    code = main(["dlq", "show", "--stack", STACK])

    # Then the table and the errors are there, but none of the chunk's rows
    out = capsys.readouterr().out
    assert code == 0
    assert SAMPLE_SYNC in out and parked.run_id in out and "HTTP 503" in out
    assert f"segsync dlq redrive --stack {STACK}" in out
    for row in parked.rows:
        assert not any(str(value) in out for value in row if isinstance(value, str) and len(value) > 4)


def test_a_chunk_delivered_since_is_flagged_as_nothing_to_redrive(stack, parked, capsys):
    # Given a duplicate copy of the chunk was delivered and counted after all
    from segsync.store import ChunkTally

    stack.runs.record_chunk(parked.run_id, parked.number, ChunkTally(3, 3, 0, 1, 100, 0))

    # When shown
    main(["dlq", "show", "--stack", STACK])

    # Then it says a redrive sends nothing for it
    assert "a redrive sends nothing" in capsys.readouterr().out


def test_an_empty_dlq_says_so(stack, capsys):
    assert main(["dlq", "show", "--stack", STACK]) == 0
    assert "empty" in capsys.readouterr().out


def test_redrive_starts_a_move_task_from_the_dlq_to_the_chunk_queue_and_waits_for_it(
    stack, parked, monkeypatch, capsys
):
    # Given SQS's message move task (which moto lacks) at the boto boundary
    dlq_arn, queue_arn = stack.arn(stack.dlq_url), stack.arn(stack.queue_url)
    client = boto3.client("sqs")
    real = deployed.aws_client
    monkeypatch.setattr(deployed, "aws_client", lambda service: client if service == "sqs" else real(service))
    monkeypatch.setattr(dlq, "MOVE_POLL_S", 0.01)
    with Stubber(client) as stubber:
        # (a look for stale chunks to drop first: none at the stub's boundary)
        stubber.add_response("receive_message", {"Messages": []})
        for url, arn in ((stack.dlq_url, dlq_arn), (stack.queue_url, queue_arn)):
            stubber.add_response(
                "get_queue_attributes",
                {"Attributes": {"QueueArn": arn}},
                {"QueueUrl": url, "AttributeNames": ["QueueArn"]},
            )
        stubber.add_response(
            "start_message_move_task", {"TaskHandle": "task-1"}, {"SourceArn": dlq_arn, "DestinationArn": queue_arn}
        )
        for status, moved in (("RUNNING", 0), ("COMPLETED", 1)):
            stubber.add_response(
                "list_message_move_tasks",
                {"Results": [{"Status": status, "SourceArn": dlq_arn, "ApproximateNumberOfMessagesMoved": moved}]},
                {"SourceArn": dlq_arn, "MaxResults": 1},
            )

        # When the DLQ is redriven with --wait
        code = main(["dlq", "redrive", "--stack", STACK, "--wait", "--json"])

        # Then the task moved the chunk back, and the command says so
        stubber.assert_no_pending_responses()
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0 and (out["method"], out["status"], out["moved"]) == ("move-task", "COMPLETED", 1)


def test_a_failed_move_task_exits_1_with_its_reason(stack, monkeypatch, capsys):
    client = boto3.client("sqs")
    real = deployed.aws_client
    monkeypatch.setattr(deployed, "aws_client", lambda service: client if service == "sqs" else real(service))
    with Stubber(client) as stubber:
        stubber.add_response("receive_message", {"Messages": []})
        for arn in ("arn:dlq", "arn:queue"):
            stubber.add_response("get_queue_attributes", {"Attributes": {"QueueArn": arn}})
        stubber.add_response("start_message_move_task", {"TaskHandle": "task-1"})
        stubber.add_response(
            "list_message_move_tasks",
            {"Results": [{"Status": "FAILED", "FailureReason": "AccessDenied", "ApproximateNumberOfMessagesMoved": 0}]},
        )
        code = main(["dlq", "redrive", "--stack", STACK, "--wait"])
    out = capsys.readouterr().out
    assert code == 1 and "move task failed" in out and "AccessDenied" in out


def test_a_redrive_drops_the_chunks_of_runs_that_no_longer_hold_their_lock(stack, parked, capsys):
    # Given the parked chunk of a run that a newer run has since superseded, and a live run's chunk beside it
    stack.runs.release_lock(SAMPLE_SYNC, parked.run_id)
    assert stack.runs.begin(SAMPLE_SYNC, "20990101T000000Z-newer1", 3_600, trigger="schedule") is None
    live = orjson.loads(SAMPLE)
    live["run"] = "20990101T000000Z-newer1"
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=orjson.dumps(live).decode())

    # When the DLQ is redriven (locally: copied back)
    queues = dlq.Queues("test", stack.sqs, stack.queue_url, stack.dlq_url, stack.runs, move_task=False, redrive_hint="")
    result = dlq.redrive(queues)

    # Then the stale chunk is dropped and counted (a sender would drop it unsent), the live one moved
    assert (result.dropped_stale, result.moved) == (1, 1)
    assert stack.depth(stack.dlq_url) == 0
    [moved] = stack.sqs.receive_message(QueueUrl=stack.queue_url)["Messages"]
    assert orjson.loads(moved["Body"])["run"] == "20990101T000000Z-newer1"


def test_queue_urls_go_with_endpoint_not_with_stack(stack, capsys):
    code = main(["dlq", "show", "--stack", STACK, "--dlq-url", "http://x"])
    assert code == 2 and "--endpoint" in capsys.readouterr().err

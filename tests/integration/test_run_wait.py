"""``segsync run NAME --stack S --wait``: follow a run to its outcome, as an orchestrator waits on it.

The stack is moto's (tables, queue) behind a stand-in CloudFormation stack. moto cannot run Lambda's
asynchronous invoke without Docker, so the Lambda client the CLI gets is a stand-in that drives the real
planner handler in-process: the invoke only queues the event, and each time the CLI sleeps between polls
the world moves one step, as AWS would (the planner plans, the senders drain the queue, the next tick
finalizes). The clock is the test's: minutes of waiting take no time.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
import orjson
import pytest

from segsync import deployed
from segsync.cli import main
from segsync.local.driver import LocalDriver
from segsync.store import RunStore

from .stand_in import table_resource

STACK = "segsync-wait"
PLANNER = "segsync-wait-planner"


class World:
    """AWS around one asynchronous planner invoke, one step per sleep of the CLI."""

    def __init__(self, driver: LocalDriver, *, plans: bool = True, deliver_twice: bool = False) -> None:
        self.driver = driver
        self.plans = plans
        self.deliver_twice = deliver_twice
        self.now = 0.0
        self.invoked: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.steps: list[str] = []

    # the Lambda client's invoke, as boto3 calls it
    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert (FunctionName, InvocationType) == (PLANNER, "Event")
        event = orjson.loads(Payload)
        self.invoked.append(event)
        if self.plans:
            self.pending += [event, event] if self.deliver_twice else [event]
        return {"StatusCode": 202, "ResponseMetadata": {"RequestId": "req-1"}}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.pending:
            self.steps.append("plan")
            self.driver.plan(self.pending.pop(0))
        elif self.invoked and self.plans and not self._queue_empty():
            self.steps.append("send")
            self.driver.drain()
        elif self.invoked and self.plans:
            self.steps.append("tick")
            self.driver.plan({"action": "continue", "syncs": [e["sync"] for e in self.invoked], "trigger": "schedule"})

    def _queue_empty(self) -> bool:
        sqs = boto3.client("sqs")
        url = os.environ["QUEUE_URL"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


@pytest.fixture
def cloud(stack, pushed_project, planner_handler, sender_handler, monkeypatch):
    """The stand-in stack's Outputs naming moto's tables; returns a factory of worlds wired into the CLI."""
    outputs = {
        "SyncsTableName": os.environ["SYNCS_TABLE"],
        "RunsTableName": os.environ["RUNS_TABLE"],
        "PlannerFunctionName": PLANNER,
    }
    template = {
        "Resources": {"Placeholder": table_resource(("pk", "sk"))},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=orjson.dumps(template).decode())

    def make(**options: Any) -> World:
        driver = LocalDriver(stack.client("sqs"), stack.queue_url, planner_handler, sender_handler)
        world = World(driver, **options)
        real = deployed.aws_client
        monkeypatch.setattr(deployed, "aws_client", lambda service: world if service == "lambda" else real(service))
        monkeypatch.setattr(deployed, "wait_clock", world.clock)
        monkeypatch.setattr(deployed, "wait_sleep", world.sleep)
        return world

    return make


def test_wait_follows_the_run_to_its_commit_and_exits_0(cloud, capsys, capture):
    # Given a stack whose planner, senders and tick run when time passes
    world = cloud()

    # When demo-users is run with --wait --json
    code = main(["run", "demo-users", "--stack", STACK, "--wait", "--json"])

    # Then the planner was asked for the run id the CLI chose, the run committed, and the summary says so
    out = orjson.loads(capsys.readouterr().out)
    [event] = world.invoked
    assert code == 0 and out["ok"] is True and out["outcome"] == "committed"
    assert event == {"sync": "demo-users", "full_resync": False, "trigger": "manual", "run_id": out["run_id"]}
    assert (out["status"], out["rows_read"], out["sent"], out["committed"], out["rejected"]) == (
        "committed",
        300,
        300,
        300,
        0,
    )
    assert capture.messages == 300
    assert world.steps == ["plan", "send", "tick"]


def test_wait_prints_progress_on_stderr_and_the_outcome_on_stdout(cloud, capsys):
    cloud()
    code = main(["run", "demo-users", "--stack", STACK, "--wait"])
    captured = capsys.readouterr()
    progress = [line.split("] ", 1)[1] for line in captured.err.splitlines() if line.startswith("[")]
    assert code == 0
    assert progress == [
        "waiting for the planner",
        "sending, 0/300 rows delivered, 0 committed, 0 sent, 0 rejected",
        "committed, 300/300 rows delivered, 300 committed, 300 sent, 0 rejected",
    ]
    assert "of sync 'demo-users' committed: 300 rows read, 300 sent, 0 rejected, 300 committed" in captured.out


def test_a_run_whose_model_fails_exits_1_with_the_error(cloud, capsys):
    # Given the sync's model reads a table that does not exist
    boto3.resource("dynamodb").Table(os.environ["SYNCS_TABLE"]).update_item(
        Key={"kind": "sync", "name": "demo-users"},
        UpdateExpression="SET #m = :m",
        ExpressionAttributeNames={"#m": "model"},
        ExpressionAttributeValues={":m": "SELECT * FROM no_such_table"},
    )
    cloud()

    # When it is run with --wait
    code = main(["run", "demo-users", "--stack", STACK, "--wait", "--json"])

    # Then the outcome is failed, exit 1, and the error says why
    out = orjson.loads(capsys.readouterr().out)
    assert code == 1 and out["ok"] is False and out["outcome"] == "failed"
    assert "model query failed" in out["error"] and "no_such_table" in out["error"]


def test_no_outcome_before_the_timeout_exits_3_without_waiting_for_real(cloud, capsys):
    # Given a planner that never gets to the run (throttled, say)
    world = cloud(plans=False)

    # When the CLI waits at most 30 s
    code = main(["run", "demo-users", "--stack", STACK, "--wait", "--timeout", "30", "--json"])

    # Then it gives up at 30 s of the test's clock with exit 3
    out = orjson.loads(capsys.readouterr().out)
    assert code == 3 and out["ok"] is False and out["outcome"] == "timeout"
    assert world.now == 30


def test_a_run_never_recorded_is_reported_after_the_planners_timeout(cloud, capsys):
    world = cloud(plans=False)
    code = main(["run", "demo-users", "--stack", STACK, "--wait"])
    assert code == 3 and world.now == 900
    assert "the planner has not recorded it after 900 s; see its logs (segsync-wait-planner)" in capsys.readouterr().out


def test_a_run_that_cannot_start_while_another_is_live_is_skipped_and_exits_1(cloud, capsys):
    # Given a scheduled run of demo-users that is still sending
    world = cloud()
    [scheduled] = world.driver.plan({"syncs": ["demo-users"], "trigger": "schedule"})["runs"]

    # When a run is asked for and waited on
    code = main(["run", "demo-users", "--stack", STACK, "--wait", "--json"])

    # Then the asked-for run is recorded as skipped, naming the live one, and the CLI exits 1
    out = orjson.loads(capsys.readouterr().out)
    assert code == 1 and out["outcome"] == "skipped"
    assert out["error"] == f"run {scheduled['run_id']} is still in progress"


def test_a_duplicated_asynchronous_invoke_never_disturbs_the_run(cloud, capsys):
    # Given Lambda delivers the asynchronous invoke twice (it may)
    world = cloud(deliver_twice=True)

    # When the run is waited on
    code = main(["run", "demo-users", "--stack", STACK, "--wait", "--json"])

    # Then the second delivery changed nothing: the run committed every row once
    out = orjson.loads(capsys.readouterr().out)
    assert world.steps[:2] == ["plan", "plan"]
    assert code == 0 and (out["outcome"], out["sent"]) == ("committed", 300)
    runs = RunStore(boto3.resource("dynamodb").Table(os.environ["RUNS_TABLE"])).runs("demo-users")
    assert [r["run_id"] for r in runs] == [out["run_id"]]


def test_timeout_goes_with_wait_and_wait_with_a_stack(cloud, capsys, project_file):
    cloud()
    assert main(["run", "demo-users", "--stack", STACK, "--timeout", "5"]) == 2
    assert "--timeout is how long --wait waits: pass --wait too" in capsys.readouterr().err
    assert main(["run", "demo-users", "--stack", STACK, "--wait", "--timeout", "0"]) == 2
    assert "give a number of seconds above 0" in capsys.readouterr().err
    assert main(["run", str(project_file), "--local", "--wait"]) == 2
    assert "--wait and --timeout follow a run in a deployed stack" in capsys.readouterr().err

"""``segsync push --stack`` and ``segsync run --stack`` against a stack in moto.

moto cannot deploy the SAM template, so a small CloudFormation stack in moto stands in for it: the
two tables and the Outputs the CLI reads. moto cannot invoke Lambda without Docker either, so the
planner's Invoke is checked at the boto boundary with botocore's Stubber.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import boto3
import orjson
import pytest
import yaml
from botocore.stub import Stubber
from moto import mock_aws

from segsync import deployed
from segsync.cli import main
from segsync.config import load_project

from .stand_in import table_resource

STACK = "segsync-test"
PLANNER = "segsync-test-planner"


STAND_IN = {
    "Resources": {"SyncsTable": table_resource(("kind", "name")), "RunsTable": table_resource(("pk", "sk"))},
    "Outputs": {
        "SyncsTableName": {"Value": {"Ref": "SyncsTable"}},
        "RunsTableName": {"Value": {"Ref": "RunsTable"}},
        "PlannerFunctionName": {"Value": PLANNER},
        "PlannerLogGroupName": {"Value": "segsync-test-PlannerLogGroup-abc"},
    },
}


@pytest.fixture
def stack() -> Iterator[deployed.StackOutputs]:
    """A deployed stack as far as the CLI can tell: tables and Outputs, in moto."""
    with mock_aws():
        boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=orjson.dumps(STAND_IN).decode())
        yield deployed.stack_outputs(STACK)


@pytest.fixture
def lambda_stub(monkeypatch: pytest.MonkeyPatch, stack) -> Iterator[Stubber]:
    """The Lambda client the CLI gets is stubbed; every other service is moto's."""
    client = boto3.client("lambda")
    real = deployed.aws_client
    monkeypatch.setattr(deployed, "aws_client", lambda service: client if service == "lambda" else real(service))
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _items(outputs: deployed.StackOutputs) -> dict:
    return deployed.table_items(boto3.resource("dynamodb").Table(outputs.syncs_table))


def _edit(path: Path, change) -> Path:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Terminal(io.StringIO):
    """A stdin that is a terminal, with the user's answer already typed."""

    def isatty(self) -> bool:
        return True


# ---------------------------------------------------------------------------------------- push


def test_push_writes_the_project_into_the_stacks_syncs_table(stack, project_file, capsys):
    # When the demo project is pushed to an empty stack with --yes --json
    code = main(["push", str(project_file), "--stack", STACK, "--yes", "--json"])

    # Then every connection and sync was added and the table holds exactly the file's items
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] is True and out["written"] is True
    assert out["table"] == stack.syncs_table
    assert out["added"] == [
        {"kind": "connection", "name": "segment"},
        {"kind": "connection", "name": "warehouse"},
        {"kind": "sync", "name": "demo-events"},
        {"kind": "sync", "name": "demo-users"},
        {"kind": "project", "name": "notifications"},
    ]
    assert _items(stack) == deployed.project_items(load_project(project_file))


def test_pushing_the_same_file_again_writes_nothing(stack, project_file, capsys):
    # Given the project is already in the table
    main(["push", str(project_file), "--stack", STACK, "--yes"])
    capsys.readouterr()

    # When it is pushed again
    code = main(["push", str(project_file), "--stack", STACK, "--yes"])

    # Then the diff is empty and it says so
    out = capsys.readouterr().out
    assert code == 0
    assert "= 5 unchanged" in out and "up to date: nothing to write" in out


def test_push_shows_changes_and_keeps_items_missing_from_the_file_unless_pruning(stack, project_file, capsys):
    # Given the table holds the project, then the file changes one model and drops a sync
    main(["push", str(project_file), "--stack", STACK, "--yes"])
    capsys.readouterr()

    def change(data):
        data["syncs"][0]["model"] = "SELECT * FROM users WHERE is_active"
        del data["syncs"][1]

    _edit(project_file, change)

    # When it is pushed without --prune
    code = main(["push", str(project_file), "--stack", STACK, "--yes"])

    # Then the diff names the changed field and the dropped sync, which is kept
    out = capsys.readouterr().out
    assert code == 0
    assert "  ~ sync demo-users: model" in out
    assert "  ! sync demo-events: not in the file, kept (--prune deletes it)" in out
    assert ("sync", "demo-events") in _items(stack)
    assert _items(stack)[("sync", "demo-users")]["model"] == "SELECT * FROM users WHERE is_active"

    # When it is pushed with --prune
    code = main(["push", str(project_file), "--stack", STACK, "--yes", "--prune", "--json"])

    # Then the dropped sync is deleted, and the table is the file again
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0 and out["pruned"] == [{"kind": "sync", "name": "demo-events"}]
    assert _items(stack) == deployed.project_items(load_project(project_file))


def test_push_asks_before_writing_and_a_no_writes_nothing(stack, project_file, capsys, monkeypatch):
    # Given a user at a terminal who answers "n"
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))

    # When the project is pushed without --yes
    code = main(["push", str(project_file), "--stack", STACK])

    # Then the question was asked on stderr, the answer respected, and nothing written
    captured = capsys.readouterr()
    assert code == 2
    assert "write 5 and delete 0 item(s) in " in captured.err
    assert "nothing written: not confirmed" in captured.err
    assert _items(stack) == {}


def test_push_writes_after_a_yes(stack, project_file, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert main(["push", str(project_file), "--stack", STACK]) == 0
    assert len(_items(stack)) == 5


def test_push_without_a_terminal_needs_yes(stack, project_file, capsys, monkeypatch):
    # Given no terminal (CI, a pipe)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))

    # When the project is pushed without --yes
    code = main(["push", str(project_file), "--stack", STACK, "--json"])

    # Then nothing is written and the error says what to do
    out = orjson.loads(capsys.readouterr().out)
    assert code == 2 and out["ok"] is False
    assert out["error"] == "nothing written: no terminal to confirm on (pass --yes to write without asking)"
    assert _items(stack) == {}


def test_dry_run_shows_the_diff_and_writes_nothing(stack, project_file, capsys):
    code = main(["push", str(project_file), "--stack", STACK, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "  + sync demo-users" in out and "dry run: nothing written" in out
    assert _items(stack) == {}


def test_an_invalid_project_file_is_refused_before_any_aws_call(project_file, capsys, monkeypatch):
    # Given a misspelled field, and no AWS at all
    _edit(project_file, lambda d: d["syncs"][0].update(trait=d["syncs"][0].pop("traits")))
    monkeypatch.setattr(deployed, "aws_client", lambda service: pytest.fail(f"called {service}"))

    # When it is pushed
    code = main(["push", str(project_file), "--stack", STACK, "--yes"])

    # Then the error names the sync and the field
    assert code == 2
    assert "sync 'demo-users' field 'trait'" in capsys.readouterr().err


def test_an_unknown_stack_is_named_with_its_region(project_file, capsys):
    with mock_aws():
        code = main(["push", str(project_file), "--stack", "nope", "--yes"])
    assert code == 2
    assert "stack 'nope' does not exist in us-east-1 (is AWS_REGION right?)" in capsys.readouterr().err


def test_a_stack_without_segsync_outputs_is_refused(project_file, capsys):
    # Given a stack that is not a segsync stack
    with mock_aws():
        other = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"QueueUrl": {"Value": "x"}}}
        boto3.client("cloudformation").create_stack(StackName="other", TemplateBody=orjson.dumps(other).decode())

        # When the project is pushed to it
        code = main(["push", str(project_file), "--stack", "other", "--yes"])

    # Then the error lists the outputs that are missing
    assert code == 2
    assert "has no output SyncsTableName, RunsTableName, PlannerFunctionName" in capsys.readouterr().err


def test_missing_credentials_are_one_clear_line(project_file, capsys, monkeypatch):
    # Given no credentials anywhere (a user who has not signed in)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it found earlier

    # When the project is pushed
    code = main(["push", str(project_file), "--stack", STACK, "--yes"])

    # Then one line says what is missing, no traceback
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err.strip()
        == f"segsync: error: stack '{STACK}': no AWS credentials; set AWS_PROFILE or sign in (aws sso login)"
    )


# ---------------------------------------------------------------------------------------- run


@pytest.fixture
def pushed(stack, project_file, capsys) -> deployed.StackOutputs:
    main(["push", str(project_file), "--stack", STACK, "--yes"])
    capsys.readouterr()
    return stack


RUN_ID = "20261201T101010Z-abc123"


@pytest.fixture
def run_id(monkeypatch: pytest.MonkeyPatch) -> str:
    """The run id the CLI chooses (and passes to the planner), fixed so the invoke's payload is known."""
    monkeypatch.setattr("segsync.commands.aws.new_run_id", lambda: RUN_ID)
    return RUN_ID


def test_run_invokes_the_planner_asynchronously_for_the_named_sync(pushed, lambda_stub, run_id, capsys):
    # Given Lambda accepts one asynchronous invocation of the stack's planner with a manual run request,
    # carrying the run id the CLI chose (the asynchronous invoke answers none)
    payload = orjson.dumps({"sync": "demo-users", "full_resync": True, "trigger": "manual", "run_id": run_id})
    lambda_stub.add_response(
        "invoke",
        {"StatusCode": 202, "ResponseMetadata": {"RequestId": "req-42", "HTTPStatusCode": 202}},
        {"FunctionName": PLANNER, "InvocationType": "Event", "Payload": payload},
    )

    # When the sync is run in the stack with --full-resync --json
    code = main(["run", "demo-users", "--stack", STACK, "--full-resync", "--json"])

    # Then it was invoked exactly so, and the summary says which function and request
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0
    assert out == {
        "ok": True,
        "stack": STACK,
        "sync": "demo-users",
        "run_id": run_id,
        "full_resync": True,
        "function": PLANNER,
        "request_id": "req-42",
    }


def test_run_tells_where_to_follow_the_run(pushed, lambda_stub, run_id, capsys):
    payload = orjson.dumps({"sync": "demo-events", "full_resync": False, "trigger": "manual", "run_id": run_id})
    lambda_stub.add_response(
        "invoke",
        {"StatusCode": 202, "ResponseMetadata": {"RequestId": "req-7", "HTTPStatusCode": 202}},
        {"FunctionName": PLANNER, "InvocationType": "Event", "Payload": payload},
    )

    assert main(["run", "demo-events", "--stack", STACK]) == 0

    out = capsys.readouterr().out
    assert f"started a run of sync 'demo-events' on stack {STACK}: run {run_id}" in out
    assert f"planner: {PLANNER} (request req-7)" in out
    assert "aws logs tail segsync-test-PlannerLogGroup-abc --follow" in out


def test_run_refuses_a_sync_the_table_does_not_have(pushed, lambda_stub, capsys):
    # When a sync that is not in the table is run (the stub would fail on any Invoke)
    code = main(["run", "nope", "--stack", STACK])

    # Then nothing is invoked and the error names the stack and the sync
    assert code == 2
    assert f"stack '{STACK}': sync 'nope' is not in the syncs table" in capsys.readouterr().err


def test_run_refuses_a_sync_item_edited_into_an_invalid_shape(pushed, lambda_stub, capsys):
    # Given someone set the key to an empty string in the console
    table = boto3.resource("dynamodb").Table(pushed.syncs_table)
    table.update_item(
        Key={"kind": "sync", "name": "demo-users"},
        UpdateExpression="SET #k = :e",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":e": ""},
    )

    # When it is run
    code = main(["run", "demo-users", "--stack", STACK])

    # Then the error names the sync and the field, and nothing is invoked
    err = capsys.readouterr().err
    assert code == 2
    assert "sync 'demo-users'" in err and "key" in err


def test_lambda_refusing_the_invoke_is_one_clear_line(pushed, lambda_stub, capsys):
    lambda_stub.add_client_error(
        "invoke",
        service_error_code="AccessDeniedException",
        service_message="not allowed",
        http_status_code=403,
    )
    code = main(["run", "demo-users", "--stack", STACK])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"segsync: error: invoking planner '{PLANNER}': AccessDeniedException: not allowed"
    )


def test_run_takes_either_a_local_file_or_a_stack(project_file, capsys):
    # --sync belongs to --local
    with mock_aws():
        code = main(["run", "demo-users", "--stack", STACK, "--sync", "demo-users"])
    assert code == 2
    assert "--sync is for --local" in capsys.readouterr().err

    # one of --local / --stack is required, not both
    for argv in (["run", str(project_file)], ["run", str(project_file), "--local", "--stack", STACK]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2


def test_push_shows_the_relation_of_each_dbt_model_and_stores_it(stack, tmp_path, capsys):
    # Given a project whose sync names a dbt model, and the manifest dbt wrote
    from ..dbt_warehouse import MANIFEST

    project = {
        "dbt": {"manifest": str(MANIFEST)},
        "connections": {
            "warehouse": {"type": "snowflake", "account": "xy1", "user": "U", "credentials": {"secret": "w"}},
            "segment": {"type": "segment", "write_key": {"secret": "segsync/segment/prod"}},
        },
        "syncs": [
            {
                "name": "users",
                "object": "user",
                "source": "warehouse",
                "destination": "segment",
                "model": {"dbt": "dim_users"},
                "key": "user_id",
            }
        ],
        "notifications": [{"webhook": {"secret": "segsync/notify/slack"}, "on": ["failed"]}],
    }
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(project))

    # When it is pushed
    code = main(["push", str(path), "--stack", STACK, "--yes"])

    # Then the push says which relation the model resolved to, and the item holds it (the planner never
    # needs the manifest), as does the notifications item its entries
    out = capsys.readouterr().out
    assert code == 0
    assert """  sync 'users': dbt model dim_users → "warehouse"."main"."dim_users\"""" in out
    items = _items(stack)
    assert items[("sync", "users")]["model"] == {"dbt": "dim_users", "relation": '"warehouse"."main"."dim_users"'}
    assert items[("project", "notifications")]["notifications"] == [
        {"webhook": {"secret": "segsync/notify/slack"}, "on": ["failed"]}
    ]


def test_run_asks_the_planner_for_a_baseline_or_mass_removals(pushed, lambda_stub, run_id, capsys):
    # Given Lambda accepts the invocation of a baseline that may remove past the sync's share
    payload = orjson.dumps(
        {"sync": "demo-users", "full_resync": False, "trigger": "manual", "run_id": run_id, "mark_synced": True,
         "allow_mass_removal": True}
    )  # fmt: skip
    lambda_stub.add_response(
        "invoke",
        {"StatusCode": 202, "ResponseMetadata": {"RequestId": "req-9", "HTTPStatusCode": 202}},
        {"FunctionName": PLANNER, "InvocationType": "Event", "Payload": payload},
    )

    # When it is asked for, Then the planner event says so, and so does the CLI
    assert main(["run", "demo-users", "--stack", STACK, "--mark-synced", "--allow-mass-removal"]) == 0
    assert f"started a baseline (--mark-synced) of sync 'demo-users' on stack {STACK}" in capsys.readouterr().out

    # And a baseline that is also a full resync is refused before any call
    assert main(["run", "demo-users", "--stack", STACK, "--mark-synced", "--full-resync"]) == 2
    assert "--full-resync sends every row and --mark-synced sends none" in capsys.readouterr().err

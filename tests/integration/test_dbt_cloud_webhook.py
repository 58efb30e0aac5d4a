"""dbt Cloud's "job run completed" webhook: signed deliveries start the syncs of the models the job built.

Under moto (the webhook's secret in Secrets Manager, the syncs and runs tables), with a loopback fake of
dbt Cloud's Administrative API serving the run's steps and the run_results.json dbt really wrote for the
fixture project. The planner is driven in-process where Lambda would invoke it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
import yaml
from botocore.stub import Stubber

from segsync import settings as segsync_settings
from segsync.config import load_project
from segsync.handlers import plan_event
from segsync.local.driver import LambdaContext, load_handler
from segsync.settings import PlannerSettings, WebhookSettings
from segsync.store import RunStore, SyncStore
from segsync.webhook import handle, signature

from ..conftest import EVENTS
from ..dbt_warehouse import MANIFEST, RUN_RESULTS, build_dbt_warehouse
from ..http_fakes import Service, serve

SECRET_NAME = "segsync/dbt-cloud"
SIGNING_KEY = "whsec-test-signing-key"
API_TOKEN = "dbtc-service-token"
ACCOUNT, RUN = "1", "12345"
STEPS = [
    {"index": 1, "name": "Clone git repository"},
    {"index": 2, "name": "Create profile from connection Snowflake"},
    {"index": 3, "name": "Invoke dbt with `dbt deps`"},
    {"index": 4, "name": "Invoke dbt with `dbt build`"},
]


def dbt_cloud(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """dbt Cloud's API for one run: its steps, and run_results.json for the step that ran dbt build."""
    if headers.get("authorization") != f"Token {API_TOKEN}":
        return 401, b'{"status": {"code": 401}}'
    run = f"/api/v2/accounts/{ACCOUNT}/runs/{RUN}/"
    if path.startswith(run + "?include_related="):
        return 200, orjson.dumps({"data": {"id": int(RUN), "status": 10, "run_steps": STEPS}})
    if path == run + "artifacts/run_results.json?step=4":
        return 200, RUN_RESULTS.read_bytes()
    return 404, b'{"status": {"code": 404}}'


@pytest.fixture
def api() -> Iterator[Service]:
    with serve(dbt_cloud) as service:
        yield service


@pytest.fixture
def dbt_stack(stack, tmp_path: Path, capture, monkeypatch) -> None:
    """Three syncs in the syncs table: two read dbt models the job builds, one reads SQL; the secret in place."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "test-write-key")
    build_dbt_warehouse(tmp_path)
    sync = {"object": "user", "source": "warehouse", "destination": "segment", "key": "user_id"}
    project = {
        "dbt": {"manifest": str(MANIFEST)},
        "connections": {
            "warehouse": {"type": "duckdb", "path": str(tmp_path / "warehouse.duckdb")},
            "segment": {"type": "segment", "endpoint": capture.url, "write_key": {"env": "SEGMENT_WRITE_KEY"}},
        },
        "syncs": [
            {**sync, "name": "dbt-users", "model": {"dbt": "dim_users"}},
            {**sync, "name": "dbt-signups", "model": {"dbt": "fct_signups"}, "key": "event_id"},
            {**sync, "name": "raw-users", "model": 'SELECT * FROM "warehouse"."main"."dim_users"'},
        ],
    }
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(project))
    SyncStore(stack.table(os.environ["SYNCS_TABLE"])).push(load_project(path))
    secret = orjson.dumps({"webhook_secret": SIGNING_KEY, "api_token": API_TOKEN}).decode()
    boto3.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=secret)


class Planner:
    """Where Lambda would invoke the planner asynchronously: the real handler, in-process."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        plan_event(event, PlannerSettings.from_env())


def _payload(status: str = "Success", event_type: str = "job.run.completed", age_s: float = 2.0) -> bytes:
    sent = datetime.fromtimestamp(time.time() - age_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return orjson.dumps(
        {
            "accountId": int(ACCOUNT),
            "eventId": "wev_2L6ZDoilyiWzKkSA59Gmc2d7FDD",
            "timestamp": sent,
            "eventType": event_type,
            "webhookName": "segsync",
            "data": {"jobId": "123", "jobName": "Daily Job (dbt build)", "runId": RUN, "runStatus": status},
        }
    )


def _request(body: bytes, authorization: str | None) -> dict[str, Any]:
    event = orjson.loads((EVENTS / "webhook-dbt-cloud-run-completed.json").read_bytes())
    event["body"] = body.decode()
    if authorization is None:
        del event["headers"]["authorization"]
    else:
        event["headers"]["authorization"] = authorization
    return event


def _settings(api: Service) -> WebhookSettings:
    return WebhookSettings(planner_function="segsync-planner", dbt_cloud_secret=SECRET_NAME, dbt_cloud_api=api.url)


def _runs_by_trigger() -> dict[str, str]:
    runs = RunStore(boto3.resource("dynamodb").Table(os.environ["RUNS_TABLE"]))
    return {name: item["trigger"] for name in ("dbt-users", "dbt-signups", "raw-users") for item in runs.runs(name)}


def test_a_signed_completed_run_starts_the_syncs_that_read_the_models_it_built(dbt_stack, api):
    # Given a delivery signed with the webhook's secret, for a successful run that built the fixture's models
    body = _payload()
    planner = Planner()

    # When it arrives
    answer = handle(_request(body, signature(body, SIGNING_KEY)), _settings(api), invoke=planner)

    # Then dbt Cloud was asked for the run's steps and the dbt step's results, the planner for the models
    # built, and it started exactly the syncs that read them (not the one with its own SQL)
    assert (answer.status, answer.body) == (200, {"started": True, "models": 3})
    assert [r.path.split("?")[0].rsplit("/", 2)[-2:] for r in api.received] == [
        [RUN, ""],
        ["artifacts", "run_results.json"],
        ["artifacts", "run_results.json"],
    ]
    assert planner.events == [
        {"trigger": f"dbt-cloud run {RUN}", "dbt_models": ["dim_users", "fct_signups", "stg_users"]}
    ]
    assert _runs_by_trigger() == {"dbt-users": f"dbt-cloud run {RUN}", "dbt-signups": f"dbt-cloud run {RUN}"}


@pytest.mark.parametrize(
    ("authorization", "status", "answer"),
    [
        (None, 401, {"message": "Unauthorized"}),
        ("", 401, {"message": "Unauthorized"}),
        ("forged", 403, {"message": "Forbidden"}),
        ("other-key", 403, {"message": "Forbidden"}),
        ("tampered", 403, {"message": "Forbidden"}),
    ],
)
def test_unsigned_and_forged_deliveries_are_refused_saying_nothing_and_starting_nothing(
    dbt_stack, api, authorization, status, answer
):
    # Given a delivery without a signature, with a made-up one, one made with another key, or a body
    # changed after signing
    body = _payload()
    signatures = {
        "forged": "0" * 64,
        "other-key": signature(body, "not-the-key"),
        "tampered": signature(body, SIGNING_KEY),
    }
    sent = body.replace(b'"Success"', b'"Success" ') if authorization == "tampered" else body
    planner = Planner()

    # When it arrives
    result = handle(_request(sent, signatures.get(authorization, authorization)), _settings(api), invoke=planner)

    # Then it is refused with a bare status, dbt Cloud is not called and no sync starts
    assert (result.status, result.body) == (status, answer)
    assert api.received == [] and planner.events == [] and _runs_by_trigger() == {}


def test_a_stale_delivery_is_refused_as_a_replay(dbt_stack, api):
    body = _payload(age_s=600)
    planner = Planner()
    result = handle(_request(body, signature(body, SIGNING_KEY)), _settings(api), invoke=planner)
    assert (result.status, result.body) == (403, {"message": "Forbidden"})
    assert planner.events == [] and api.received == []


@pytest.mark.parametrize(("status", "event_type"), [("Errored", "job.run.completed"), ("Running", "job.run.started")])
def test_a_run_that_did_not_succeed_starts_nothing(dbt_stack, api, status, event_type):
    body = _payload(status=status, event_type=event_type)
    planner = Planner()
    result = handle(_request(body, signature(body, SIGNING_KEY)), _settings(api), invoke=planner)
    assert (result.status, result.body) == (200, {"started": False})
    assert planner.events == [] and api.received == []


def test_dbt_clouds_api_failing_asks_dbt_cloud_to_retry(dbt_stack):
    # Given dbt Cloud's API answering 500
    with serve(lambda path, headers, body: (500, b"{}")) as broken:
        body = _payload()
        planner = Planner()

        # When a signed delivery arrives
        result = handle(_request(body, signature(body, SIGNING_KEY)), _settings(broken), invoke=planner)

    # Then the answer is a 502 (dbt Cloud retries a failed delivery) and nothing started
    assert (result.status, result.body) == (502, {"message": "Bad Gateway"})
    assert planner.events == []


def test_the_lambda_entry_answers_the_function_url_and_invokes_the_planner_asynchronously(dbt_stack, api, monkeypatch):
    # Given the webhook function's environment as the template sets it, and Lambda's client stubbed at the
    # boto3 boundary (moto cannot invoke without Docker)
    monkeypatch.setenv("PLANNER_FUNCTION", "segsync-planner")
    monkeypatch.setenv("DBT_CLOUD_SECRET", SECRET_NAME)
    monkeypatch.setenv("DBT_CLOUD_API", api.url)
    client = segsync_settings.aws_client("lambda", None, "us-east-1")
    expected = orjson.dumps(
        {"trigger": f"dbt-cloud run {RUN}", "dbt_models": ["dim_users", "fct_signups", "stg_users"]}
    )
    body = _payload()

    # When the function URL delivers a signed request to the entry file
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": "segsync-planner", "InvocationType": "Event", "Payload": expected},
        )
        response = load_handler("webhook")(
            _request(body, signature(body, SIGNING_KEY)), LambdaContext("segsync-webhook", timeout_s=15)
        )
        stubber.assert_no_pending_responses()

    # Then it answered 200 in the function URL's response shape
    assert response == {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": '{"started":true,"models":3}',
    }


def test_a_missing_secret_is_a_500_that_names_nothing(stack, api):
    body = _payload()
    result = handle(_request(body, signature(body, SIGNING_KEY)), _settings(api), invoke=Planner())
    assert (result.status, result.body) == (500, {"message": "Internal Server Error"})

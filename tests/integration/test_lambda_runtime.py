"""Both functions on the Lambda runtime's Python with only the layers: no dev package can hide a missing one.

Each handler runs in a Python 3.12 subprocess whose ``sys.path`` holds the function's folder and the
two layers as `sam build` makes them (see ``lambda_layers``), with Lambda's environment: tracing on
(X-Ray segments go to a UDP socket here, as to the daemon), metrics printed as EMF. AWS is moto's
server on loopback, Segment the capture endpoint, Snowflake fakesnow's server, which the real
connector reaches over HTTP.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import fakesnow
import orjson
import psycopg
import pytest
import requests
import snowflake.connector
from moto.server import ThreadedMotoServer

from segsync.chunks import decode
from segsync.config import load_project
from segsync.local.capture import CaptureServer, read_captured
from segsync.local.stack import REGION, RUNS_TABLE, SYNCS_TABLE, LocalStack, create_resources
from segsync.store import RunStore, SyncStore

from .. import postgres_server as pg
from ..conftest import EVENTS
from .conftest import SAMPLE_RUN, SAMPLE_SYNC, begin_run, counted
from .lambda_layers import ROOT, Runtime, dependency_layer, library_layer, runtime_python

NOT_IN_THE_LAYERS = ("moto", "duckdb", "pyarrow", "fakesnow", "pytest", "hypothesis")
TRACE_ID = "Root=1-6760a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
WAREHOUSE_SECRET = "segsync/warehouse/fakesnow"
WRITE_KEY_SECRET = "segsync/segment/capture"
USERS = 25


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    python = runtime_python()
    return Runtime(python, (dependency_layer(python), library_layer(tmp_path_factory.mktemp("library"))))


@pytest.fixture
def aws() -> Iterator[LocalStack]:
    """moto's server on loopback with the template's tables and queues (the functions reach it over HTTP)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        yield create_resources(endpoint)
    finally:
        server.stop()


@pytest.fixture
def xray() -> Iterator[socket.socket]:
    """A UDP socket where the X-Ray daemon would listen: the SDK sends its segments here."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(0.2)
        yield daemon


def _segments(daemon: socket.socket) -> list[dict[str, Any]]:
    """The segment documents received so far (each datagram: a JSON header line, then the segment)."""
    received = []
    while True:
        try:
            datagram = daemon.recv(65_536)
        except TimeoutError:
            return received
        received.append(orjson.loads(datagram.split(b"\n", 1)[1]))


def _environment(aws: LocalStack, xray: socket.socket, function: str, **variables: str) -> dict[str, str]:
    """What Lambda sets for a function (with tracing Active), plus the template's variables for it."""
    return {
        "AWS_ENDPOINT_URL": aws.endpoint or "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": f"segsync-{function}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
        "TZ": ":UTC",
        "_X_AMZN_TRACE_ID": TRACE_ID,
        "AWS_XRAY_DAEMON_ADDRESS": "{}:{}".format(*xray.getsockname()),
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "POWERTOOLS_SERVICE_NAME": "segsync",
        "POWERTOOLS_METRICS_NAMESPACE": "segsync",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **variables,
    }


def _sender_env(aws: LocalStack, xray: socket.socket, capture: CaptureServer, **variables: str) -> dict[str, str]:
    return _environment(
        aws,
        xray,
        "sender",
        RUNS_TABLE=RUNS_TABLE,
        SEGMENT_EVENTS_PER_SECOND="1000",
        SEGMENT_ALLOWED_ENDPOINTS=capture.url,
        **variables,
    )


def _planner_env(aws: LocalStack, xray: socket.socket, warehouse_host: str) -> dict[str, str]:
    """The planner's environment, the warehouse's server listed as the stack's WarehouseAllowedHosts would."""
    return _environment(
        aws,
        xray,
        "planner",
        SYNCS_TABLE=SYNCS_TABLE,
        RUNS_TABLE=RUNS_TABLE,
        QUEUE_URL=aws.queue_url,
        WAREHOUSE_ALLOWED_HOSTS=warehouse_host,
    )


def _sqs_event(aws: LocalStack) -> dict[str, Any]:
    """Every chunk waiting in the queue, as the event source mapping would hand them to the sender."""
    sqs = aws.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=aws.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }
        for m in messages
    ]
    return {"Records": records}


# ---------------------------------------------------------------------------------------- sender


def test_the_sender_delivers_the_sample_chunk_on_the_lambda_runtime(runtime, aws, xray, capture, sqs_event_factory):
    # Given the sample SQS event from events/, its chunk's destination the capture endpoint, its run recorded
    event = sqs_event_factory()
    runs = RunStore(aws.table(RUNS_TABLE))
    begin_run(runs, SAMPLE_SYNC, SAMPLE_RUN)
    rows = len(decode(event["Records"][0]["body"]).rows)

    # When the sender's handler runs on Python 3.12 with only the layers
    invocation = runtime.invoke(
        "sender",
        event,
        _sender_env(aws, xray, capture, SEGMENT_WRITE_KEY="runtime-write-key"),
        absent=NOT_IN_THE_LAYERS,
    )

    # Then nothing from the dev virtualenv was there, every module came from a layer, and the chunk
    # went out: no failed record, the messages at the endpoint, the chunk counted, metrics and a trace
    assert invocation.response == {"batchItemFailures": []}
    modules = invocation.outcome["modules"]
    assert modules["segsync"].startswith(str(runtime.layers[1]))
    assert modules["aws_xray_sdk"].startswith(str(runtime.layers[0]))
    assert modules["boto3"].startswith(str(runtime.layers[0]))
    messages = read_captured(capture.out_path)
    assert len(messages) == rows and {m["type"] for m in messages} == {"identify"}
    assert counted(runs, SAMPLE_RUN)["sent"] == rows
    assert invocation.metrics()["MessagesSent"] == rows
    assert "## handler" in {segment["name"] for segment in _segments(xray)}


def test_without_the_tracer_extra_the_functions_would_not_even_import(runtime, aws, xray, capture, tmp_path):
    # Given the dependency layer without the X-Ray SDK (what a lock without Powertools' tracer extra ships)
    stripped = tmp_path / "deps" / "python"
    _copy_without(runtime.layers[0], stripped, "aws_xray_sdk")
    without_tracer = Runtime(runtime.python, (stripped, runtime.layers[1]))

    # When the sender's handler is imported there
    invocation = without_tracer.invoke("sender", {"Records": []}, _sender_env(aws, xray, capture))

    # Then it fails as it did in Lambda: the check above would have caught it
    assert invocation.returncode == 1
    assert "No module named 'aws_xray_sdk'" in invocation.outcome["error"]


def _copy_without(source: Path, dest: Path, package: str) -> None:
    shutil.copytree(
        source, dest, symlinks=True, ignore=lambda folder, names: [n for n in names if n.startswith(package)]
    )


# ---------------------------------------------------------------------------------------- planner


@pytest.fixture
def snowflake_server() -> Iterator[dict[str, Any]]:
    """fakesnow's server with a users table in ANALYTICS.MARTS; yields the connector's arguments for it.

    The sync's connection names the server (``host``), which the planner reaches only because
    WAREHOUSE_ALLOWED_HOSTS lists it; the harness adds just fakesnow's test options (no telemetry, no retries).
    """
    with fakesnow.server() as server:
        with snowflake.connector.connect(**server, database="ANALYTICS", schema="MARTS") as seed:
            seed.cursor().execute(
                "CREATE TABLE users AS SELECT 'user_' || LPAD(seq4()::varchar, 6, '0') AS user_id, "
                "'user' || seq4() || '@example.com' AS email, 'pro' AS plan "
                f"FROM TABLE(GENERATOR(ROWCOUNT => {USERS}))"
            )
        yield server


SNOWFLAKE = {
    "type": "snowflake",
    "account": "segsync-runtime-test",
    "user": "SEGSYNC",
    "database": "ANALYTICS",
    "schema": "MARTS",
    "credentials": {"secret": WAREHOUSE_SECRET},
}


def _project(tmp_path: Path, capture: CaptureServer, warehouse: dict[str, Any] = SNOWFLAKE) -> Path:
    """demo-users (the sync events/planner-run-sync.json names) from a warehouse; secrets in Secrets Manager."""
    project = {
        "version": 1,
        "connections": {
            "warehouse": warehouse,
            "segment": {
                "type": "segment",
                "endpoint": capture.url,
                "write_key": {"secret": WRITE_KEY_SECRET},
                "events_per_second": 100_000,
            },
        },
        "syncs": [
            {
                "name": "demo-users",
                "object": "user",
                "source": "warehouse",
                "destination": "segment",
                "model": "SELECT user_id, email, plan FROM users",
                "key": "user_id",
                "traits": {"email": "email", "plan": "plan"},
            }
        ],
    }
    path = tmp_path / "segsync.yml"
    path.write_text(orjson.dumps(project).decode())  # JSON is YAML
    return path


def test_the_planner_plans_a_snowflake_model_and_the_sender_delivers_it_on_the_lambda_runtime(
    runtime, aws, xray, capture, snowflake_server, tmp_path
):
    # Given a sync of a Snowflake model (fakesnow's server, listed in WAREHOUSE_ALLOWED_HOSTS) in the syncs
    # table, its credentials and the write key in Secrets Manager under the stack's prefixes
    server = f"{snowflake_server['host']}:{snowflake_server['port']}"
    warehouse = {**SNOWFLAKE, "host": f"{snowflake_server['protocol']}://{server}"}
    SyncStore(aws.table(SYNCS_TABLE)).push(load_project(_project(tmp_path, capture, warehouse)))
    secrets = boto3.client("secretsmanager", endpoint_url=aws.endpoint, region_name=REGION)
    secrets.create_secret(Name=WAREHOUSE_SECRET, SecretString='{"password": "snow"}')
    secrets.create_secret(Name=WRITE_KEY_SECRET, SecretString="runtime-write-key")
    planner_env = _planner_env(aws, xray, server)
    request = orjson.loads((EVENTS / "planner-run-sync.json").read_bytes())
    options = {key: snowflake_server[key] for key in ("session_parameters", "network_timeout")}

    # When the planner handles the run request, the sender the chunks it queued, then the planner's tick
    # commits, each on Python 3.12 with only the layers
    planned = runtime.invoke("planner", request, planner_env, absent=NOT_IN_THE_LAYERS, snowflake=options)
    sent = runtime.invoke("sender", _sqs_event(aws), _sender_env(aws, xray, capture), absent=NOT_IN_THE_LAYERS)
    ticked = runtime.invoke("planner", {"action": "continue", "sync": "demo-users"}, planner_env, snowflake=options)

    # Then the run read every row, the sender delivered them all, and the run is committed in the warehouse
    [run] = planned.response["runs"]
    assert (run["status"], run["rows_read"], run["new"]) == ("sending", USERS, USERS)
    assert planned.metrics()["RowsPlanned"] == USERS
    assert sent.response == {"batchItemFailures": []}
    assert sorted(m["userId"] for m in read_captured(capture.out_path)) == [f"user_{i:06d}" for i in range(USERS)]
    [after] = ticked.response["runs"]
    assert (after["run_id"], after["status"], after["committed"]) == (run["run_id"], "committed", USERS)
    assert RunStore(aws.table(RUNS_TABLE)).run("demo-users", run["run_id"])["committed"] == USERS


def test_the_planner_plans_a_postgres_model_on_the_lambda_runtime(runtime, aws, xray, capture, postgres_connection,
                                                                  postgres_server, tmp_path):  # fmt: skip
    # Given a sync of a PostgreSQL model on the real server, its password and the write key in Secrets Manager
    with psycopg.connect(postgres_server.admin_dsn(postgres_connection.database), autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE users AS SELECT 'user_' || LPAD(i::text, 6, '0') AS user_id, "
            f"'user' || i || '@example.com' AS email, 'pro' AS plan FROM generate_series(0, {USERS - 1}) AS i; "
            "GRANT SELECT ON users TO segsync"
        )
    warehouse = {**postgres_connection.model_dump(exclude_none=True), "credentials": {"secret": WAREHOUSE_SECRET}}
    SyncStore(aws.table(SYNCS_TABLE)).push(load_project(_project(tmp_path, capture, warehouse)))
    secrets = boto3.client("secretsmanager", endpoint_url=aws.endpoint, region_name=REGION)
    secrets.create_secret(Name=WAREHOUSE_SECRET, SecretString=orjson.dumps({"password": pg.PASSWORD}).decode())
    secrets.create_secret(Name=WRITE_KEY_SECRET, SecretString="runtime-write-key")
    planner_env = _planner_env(aws, xray, f"{postgres_server.host}:{postgres_server.port}")
    request = orjson.loads((EVENTS / "planner-run-sync.json").read_bytes())

    # When the planner plans it, the sender delivers, and the planner's tick commits, on Python 3.12 with the layers
    planned = runtime.invoke("planner", request, planner_env, absent=NOT_IN_THE_LAYERS)
    sent = runtime.invoke("sender", _sqs_event(aws), _sender_env(aws, xray, capture), absent=NOT_IN_THE_LAYERS)
    ticked = runtime.invoke("planner", {"action": "continue", "sync": "demo-users"}, planner_env)

    # Then psycopg came from the layer, every row went out, and the state is in PostgreSQL
    [run] = planned.response["runs"]
    assert (run["status"], run["rows_read"], run["new"]) == ("sending", USERS, USERS)
    assert sent.response == {"batchItemFailures": []}
    assert sorted(m["userId"] for m in read_captured(capture.out_path)) == [f"user_{i:06d}" for i in range(USERS)]
    [after] = ticked.response["runs"]
    assert (after["run_id"], after["status"], after["committed"]) == (run["run_id"], "committed", USERS)
    with psycopg.connect(postgres_server.admin_dsn(postgres_connection.database)) as admin:
        assert admin.execute("SELECT COUNT(*) FROM SEGSYNC.SYNC_STATE").fetchone() == (USERS,)

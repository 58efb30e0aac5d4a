"""``segsync local-stack``: the stack ``sam local invoke`` points the functions at, and events/local-env.json.

Docker is not needed here: the functions run in process with the environment a container would get
(the container's host name swapped for 127.0.0.1), against the served moto and capture endpoint.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from pathlib import Path

import boto3
import orjson
import pytest

from segsync.chunks import decode
from segsync.cli import main
from segsync.commands.serve import container_env, serve_local_stack, served_stack
from segsync.config import PostgresConnection, load_project
from segsync.local.capture import read_captured
from segsync.local.driver import LambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_local_env_file_is_what_local_stack_serves_on_the_default_ports(tmp_path):
    # Given a served stack (any port: the queue's path does not depend on it)
    with served_stack("127.0.0.1", 0, 0, tmp_path / "captured.ndjson") as served:
        queue_path = served.container_env["PlannerFunction"]["QUEUE_URL"].split(str(served.moto_port), 1)[1]

    # When we compute what the defaults (port 5000, host.docker.internal) give the functions
    expected = container_env("host.docker.internal", 5000, queue_path, 8765)

    # Then events/local-env.json says exactly that
    assert json.loads((EVENTS / "local-env.json").read_text()) == expected


def test_the_containerised_planner_may_connect_to_the_warehouse_hosts_of_the_loaded_project(tmp_path, project_file):
    # Given the demo project with a PostgreSQL connection on the container's host, besides its DuckDB file
    project = load_project(project_file)
    postgres = PostgresConnection(
        type="postgres", host="host.docker.internal", port=5433, database="d", user="u",
        credentials={"env": "SEGSYNC_WAREHOUSE_PASSWORD"},
    )  # fmt: skip
    project = project.model_copy(update={"connections": {**project.connections, "pg": postgres}})

    # When the stack is served with it
    with served_stack("127.0.0.1", 0, 0, tmp_path / "captured.ndjson", project=project) as served:
        planner = served.container_env["PlannerFunction"]

    # Then the planner's environment lists that server, as a local run would allow it (DuckDB names no host)
    assert planner["WAREHOUSE_ALLOWED_HOSTS"] == "host.docker.internal:5433"


def test_the_sender_configured_as_in_a_container_delivers_to_the_served_capture(tmp_path, monkeypatch, sender_handler):
    # Given a served stack, and the sender's environment as `sam local invoke` would set it
    with served_stack("127.0.0.1", 0, 0, tmp_path / "captured.ndjson", container_host="127.0.0.1") as served:
        for name, value in served.container_env["SenderFunction"].items():
            monkeypatch.setenv(name, value)
        # the sample chunk's destination is the capture endpoint as a container reaches it
        event = json.loads((EVENTS / "sender-sqs.json").read_text())
        body = orjson.loads(event["Records"][0]["body"])
        assert body["dest"]["endpoint"] == "http://host.docker.internal:8765"
        body["dest"]["endpoint"] = served.container_capture
        event["Records"][0]["body"] = orjson.dumps(body).decode()

        # When the sender handles events/sender-sqs.json
        response = sender_handler(event, LambdaContext("segsync-sender", 120))

        # Then the chunk (its run begun by the served stack, as its planner would) was delivered to the capture
        # endpoint and counted in the served runs table
        assert response == {"batchItemFailures": []}
        assert len(read_captured(served.capture.out_path)) == 3
        runs = boto3.resource("dynamodb", endpoint_url=served.endpoint).Table("segsync-runs")
        assert runs.get_item(Key={"pk": "run#20261129T000000Z-sample", "sk": "chunk#00000001"})["Item"]["sent"] == 3


def test_the_planner_configured_as_in_a_container_plans_a_loaded_project(
    tmp_path, monkeypatch, planner_handler, project_file
):
    # Given a served stack loaded with the demo project, and the planner's environment as in a container
    project = load_project(project_file)
    with served_stack(
        "127.0.0.1", 0, 0, tmp_path / "captured.ndjson", container_host="127.0.0.1", project=project
    ) as served:
        for name, value in served.container_env["PlannerFunction"].items():
            monkeypatch.setenv(name, value)

        # When the planner handles events/planner-run-sync.json
        event = json.loads((EVENTS / "planner-run-sync.json").read_text())
        result = planner_handler(event, LambdaContext("segsync-planner", 900))

        # Then it planned demo-users into chunks on the served queue, addressed to the served capture
        [run] = result["runs"]
        assert (run["sync"], run["status"]) == ("demo-users", "sending")
        sqs = boto3.client("sqs", endpoint_url=served.endpoint)
        queue_url = served.container_env["PlannerFunction"]["QUEUE_URL"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        assert int(attributes["Attributes"]["ApproximateNumberOfMessages"]) == run["chunks"] > 0
        [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"]
        assert decode(message["Body"]).destination["endpoint"] == served.container_capture


def test_local_stack_prints_its_environment_and_stops_cleanly(tmp_path, capsys):
    # Given the command serving on loopback with free ports, in a thread we can stop
    args = argparse.Namespace(
        host="127.0.0.1",
        port=0,
        capture_port=0,
        container_host="host.docker.internal",
        project=None,
        out=tmp_path / "captured.ndjson",
        json=True,
        verbose=False,
    )
    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(serve_local_stack(args, stop)))
    thread.start()

    # When it has announced itself and is stopped
    try:
        for _ in range(100):
            if (tmp_path / "captured.ndjson").exists():
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)

    # Then it printed both environments as JSON, and returned 0
    printed = orjson.loads(capsys.readouterr().out)
    assert codes == [0]
    assert set(printed["container_env"]) == {"PlannerFunction", "SenderFunction"}
    assert printed["host_env"]["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert printed["capture"].startswith("http://host.docker.internal:")


def test_a_port_in_use_is_a_clear_error_not_a_hang(tmp_path, capsys):
    # Given something already listening on a port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When local-stack is asked to serve there
        code = main(["local-stack", "--host", "127.0.0.1", "--port", str(port), "--out", str(tmp_path / "c")])

    # Then it says so and which option to change
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pick another --port" in err


def test_local_stack_listens_on_loopback_unless_told_otherwise_and_then_warns(capsys):
    # Given the command's parser and its warning
    from segsync.commands import serve

    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())

    # When no --host is given, and when every interface is asked for
    args = parser.parse_args(["local-stack"])
    serve.warn_if_exposed("127.0.0.1")
    quiet = capsys.readouterr().err
    serve.warn_if_exposed("0.0.0.0")
    warned = capsys.readouterr().err

    # Then it listens on 127.0.0.1, and only 0.0.0.0 brings a warning that moto has no authentication
    assert args.host == "127.0.0.1"
    assert quiet == ""
    assert warned.startswith("warning: listening on every interface (0.0.0.0)") and "no authentication" in warned


@pytest.mark.parametrize("flag", ["--host", "--port", "--capture-port"])
def test_local_stack_options_are_documented(flag, capsys):
    with pytest.raises(SystemExit):
        main(["local-stack", "--help"])
    assert flag in capsys.readouterr().out

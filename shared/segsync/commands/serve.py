"""``segsync local-stack``: moto and the capture endpoint, served until Ctrl-C, for ``sam local invoke``.

``make run`` starts its own stack on loopback and stops it when done. The functions that
``make invoke-planner`` / ``make invoke-sender`` run in Docker need one that outlives a command and
that a container can reach: this serves it, and prints the environment the functions need
(``events/local-env.json`` holds the same values for the default ports).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from segsync.commands import EXIT_OK, print_json
from segsync.config import Project, SegmentConnection, load_project
from segsync.console import add_verbose, function_logs, log_path
from segsync.errors import ConfigError
from segsync.local import CHECKOUT
from segsync.local.stack import REGION, RUNS_TABLE, SYNCS_TABLE
from segsync.warehouse.policy import project_hosts

CONTAINER_HOST = "host.docker.internal"
"""How a container reaches the host (Docker Desktop; Linux engines with ``--add-host ...:host-gateway``)."""
DEFAULT_PORT = 5000
DEFAULT_CAPTURE_PORT = 8765
DEFAULT_OUT = CHECKOUT / "demo" / "out" / "captured.ndjson"
LOCAL_WRITE_KEY = "segsync-demo-write-key"
SAMPLE_EVENT = CHECKOUT / "events" / "sender-sqs.json"
SAMPLE_RUN_LOCK_S = 24 * 3600
"""The sample chunk's run holds its lock for a day of serving (no planner ticks it)."""
ALL_INTERFACES = ("0.0.0.0", "::", "")


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "local-stack",
        help="serve moto (DynamoDB, SQS) and the capture endpoint until Ctrl-C, for sam local invoke",
        description=(
            "Serve a local stack that Docker containers can reach: moto with the tables and queues of "
            "template.yaml, and a Segment-compatible capture endpoint. Prints the environment for "
            "sam local invoke (events/local-env.json) and for commands on this machine."
        ),
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only). Containers (sam local invoke) "
        "reach the host through its bridge: give --host 0.0.0.0 for them, knowing that moto has no "
        "authentication and anyone on your network can then reach it too",
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="moto's port (default 5000)")
    serve.add_argument(
        "--capture-port",
        type=int,
        default=DEFAULT_CAPTURE_PORT,
        help="capture endpoint's port (default 8765)",
    )
    serve.add_argument(
        "--container-host",
        default=CONTAINER_HOST,
        help="the host's name as a container sees it (default host.docker.internal)",
    )
    serve.add_argument(
        "--project",
        type=Path,
        metavar="FILE",
        help="load this project's connections and syncs into the syncs table, its Segment destinations "
        "pointed at the capture endpoint",
    )
    serve.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where captured messages go (NDJSON)")
    serve.add_argument("--json", action="store_true", help="print the environment as JSON, then serve")
    add_verbose(serve)
    serve.set_defaults(command=serve_local_stack)


def container_env(
    container_host: str, port: int, queue_path: str, capture_port: int, warehouse_hosts: Iterable[str] = ()
) -> dict[str, dict[str, str]]:
    """What ``sam local invoke --env-vars`` gives each function so it uses the local stack.

    ``warehouse_hosts``: the hosts the loaded project's warehouse connections name (the planner may connect
    there, as local runs may). Only variables the template declares reach a function; the test suite holds
    events/local-env.json to this for the default ports and no project.
    """
    endpoint = f"http://{container_host}:{port}"
    return {
        "PlannerFunction": {
            "AWS_ENDPOINT_URL": endpoint,
            "SYNCS_TABLE": SYNCS_TABLE,
            "RUNS_TABLE": RUNS_TABLE,
            "QUEUE_URL": endpoint + queue_path,
            "WAREHOUSE_ALLOWED_HOSTS": ",".join(warehouse_hosts),
            "POWERTOOLS_LOG_LEVEL": "INFO",
        },
        "SenderFunction": {
            "AWS_ENDPOINT_URL": endpoint,
            "RUNS_TABLE": RUNS_TABLE,
            "SEGMENT_EVENTS_PER_SECOND": "1000",
            "SEGMENT_WRITE_KEY": LOCAL_WRITE_KEY,
            # The capture endpoint is where the loaded project's destinations point (see with_capture).
            "SEGMENT_ALLOWED_ENDPOINTS": f"http://{container_host}:{capture_port}",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        },
    }


def host_env(endpoint: str) -> dict[str, str]:
    """What a command on this machine needs to use the local stack (moto takes any credentials)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


def with_capture(project: Project, capture_url: str) -> Project:
    """The project with every Segment destination sent to the capture endpoint instead."""
    connections = {
        name: conn.model_copy(update={"endpoint": capture_url}) if isinstance(conn, SegmentConnection) else conn
        for name, conn in project.connections.items()
    }
    return project.model_copy(update={"connections": connections})


def serve_local_stack(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C (or until ``stop`` is set)."""
    project = load_project(args.project) if args.project else None
    warn_if_exposed(args.host)
    logs = log_path(args.project.parent if args.project else Path.cwd())
    with (
        function_logs(logs, verbose=args.verbose),
        served_stack(
            args.host, args.port, args.capture_port, args.out, container_host=args.container_host, project=project
        ) as served,
    ):
        _announce(args, served, project)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
            (stop or threading.Event()).wait()
        if not args.json:
            print(f"\nstopped; captured {served.capture.messages:,} message(s) in {served.capture.out_path}")
    return EXIT_OK


def warn_if_exposed(host: str) -> None:
    """Listening on every interface is a choice the user made (``--host 0.0.0.0``): say what it exposes."""
    if host in ALL_INTERFACES:
        print(
            f"warning: listening on every interface ({host}): moto has no authentication, so anyone who can "
            "reach this machine can read and change its tables and queues; use it on a trusted network only",
            file=sys.stderr,
        )


@dataclass(frozen=True)
class ServedStack:
    """A running local stack: where it is from this machine and from a container."""

    endpoint: str
    moto_port: int
    capture: Any
    container_capture: str
    container_env: dict[str, dict[str, str]]
    host_env: dict[str, str]


@contextmanager
def served_stack(
    host: str,
    port: int,
    capture_port: int,
    out: Path,
    *,
    container_host: str = CONTAINER_HOST,
    project: Project | None = None,
) -> Iterator[ServedStack]:
    """moto with the template's tables and queues, and the capture endpoint, on ``host``; stopped on exit."""
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    from segsync.local.capture import CaptureServer
    from segsync.local.stack import create_resources
    from segsync.store import SyncStore

    _check_free(host, port, "--port")
    _check_free(host, capture_port, "--capture-port")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    moto.start()
    try:
        moto_port = moto.get_host_and_port()[1]
        endpoint = f"http://{'127.0.0.1' if host in ALL_INTERFACES else host}:{moto_port}"
        # moto keeps its state per process, not per server: start from empty.
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        stack = create_resources(endpoint)
        _begin_sample_run(endpoint)
        with CaptureServer(out, host=host, port=capture_port) as capture:
            container_capture = f"http://{container_host}:{urlsplit(capture.url).port}"
            if project is not None:
                session = boto3.Session(
                    aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
                )
                table = session.resource("dynamodb", endpoint_url=endpoint).Table(SYNCS_TABLE)
                SyncStore(table).push(with_capture(project, container_capture))
            yield ServedStack(
                endpoint=endpoint,
                moto_port=moto_port,
                capture=capture,
                container_capture=container_capture,
                container_env=container_env(
                    container_host,
                    moto_port,
                    urlsplit(stack.queue_url).path,
                    urlsplit(capture.url).port or 0,
                    project_hosts(project) if project is not None else (),
                ),
                host_env=host_env(endpoint),
            )
    finally:
        moto.stop()


def _begin_sample_run(endpoint: str) -> None:
    """Record the run of ``events/sender-sqs.json``'s chunk as live, holding its sync's lock, as its planner would
    have: a sender drops the chunks of a run that holds no lock (stale), and the sample is there to be sent."""
    import boto3

    from segsync.chunks import decode
    from segsync.store import RunStore

    record = orjson.loads((SAMPLE_EVENT).read_bytes())["Records"][0]
    chunk = decode(record["body"])
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    runs = RunStore(session.resource("dynamodb", endpoint_url=endpoint).Table(RUNS_TABLE))
    runs.begin(chunk.sync["name"], chunk.run_id, SAMPLE_RUN_LOCK_S, trigger="local-stack")


def _check_free(host: str, port: int, flag: str) -> None:
    """moto's server thread hangs on a port in use instead of failing: find out first."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another {flag}") from None


def _announce(args: argparse.Namespace, served: ServedStack, project: Project | None) -> None:
    if args.json:
        print_json(
            {
                "ok": True,
                "container_env": served.container_env,
                "host_env": served.host_env,
                "capture": served.container_capture,
                "captured": str(served.capture.out_path),
            }
        )
        return
    print(
        f"moto (DynamoDB, SQS) on {args.host}:{served.moto_port}; "
        f"capture endpoint on {args.host}:{urlsplit(served.capture.url).port}"
    )
    if args.host not in ALL_INTERFACES:
        print("  only this machine can reach them: for sam local invoke in Docker, give --host 0.0.0.0")
    print(f"  captured messages go to {served.capture.out_path}")
    if project is not None:
        print(
            f"  loaded {args.project}: {len(project.syncs)} sync(s); "
            f"Segment destinations now {served.container_capture}"
        )
        duckdb = [name for name, conn in project.connections.items() if conn.type == "duckdb"]
        if duckdb:
            print(
                f"  note: connection {', '.join(duckdb)} is DuckDB, which the Lambda image lacks (kept out of"
                " the layer), as it lacks the file: the planner in Docker fails those syncs; `make run`"
                " runs them"
            )
    print("\nfor sam local invoke --env-vars (events/local-env.json holds this for the default ports):")
    print_json(served.container_env)
    print("\ncommands on this machine:")
    print("export " + " ".join(f"{name}={value}" for name, value in served.host_env.items()))
    print("\nCtrl-C stops.", flush=True)

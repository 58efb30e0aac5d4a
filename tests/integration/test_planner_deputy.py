"""The planner is no confused deputy: a sync item never decides where a warehouse credential goes.

Connection items in the syncs table are written by anyone with console access to it. Each attack item
below names a host of the attacker's (a socket listening on loopback, which records every byte it is
sent) and a credential the planner can read: its own AWS secret key, or the production warehouse
password in Secrets Manager. The real planner handler runs each under moto; the run fails with one line
naming the sync, the connection and the reason, nothing reaches the listener, and the canaries appear
nowhere. Listed in WAREHOUSE_ALLOWED_HOSTS, the same host is reached (so the listener is not deaf).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest

from segsync.local.driver import LambdaContext
from segsync.local.stack import REGION, LocalStack
from segsync.store import CONNECTION_KIND, SYNC_KIND, RunStore, to_item

MARKER = "SEGSYNC_CANARY"
AWS_KEY = f"aws_{MARKER}_5e2d9b7c1a3f8e04"
PROD_PASSWORD = f"prod_{MARKER}_a1b2c3d4e5f60718"
PROD_SECRET = "segsync/warehouse/prod"
WRITE_KEY_SECRET = "segsync/segment/prod"
WRITE_KEY = f"wk_{MARKER}_0f1e2d3c4b5a6978"


class Listener:
    """A host of the attacker's: accepts connections on loopback and keeps every byte it is sent."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def secrets(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Canaries: the planner's own AWS secret key, the production warehouse password, a Segment write key."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_KEY)  # moto takes any credentials
    client = boto3.client("secretsmanager", region_name=REGION)
    client.create_secret(Name=PROD_SECRET, SecretString=orjson.dumps({"password": PROD_PASSWORD}).decode())
    client.create_secret(Name=WRITE_KEY_SECRET, SecretString=WRITE_KEY)


def _attacks(port: int) -> dict[str, tuple[dict[str, Any], str]]:
    """Connection items an attacker could write, and the reason each run must fail with."""
    here = f"127.0.0.1:{port}"
    prod = {"secret": PROD_SECRET}
    postgres = {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": port,
        "database": "d",
        "user": "u",
        "sslmode": "disable",
        "connect_timeout": 2,
    }
    unlisted = "not send {kind} credentials to {where} "
    return {
        "pg-own-aws-key": (
            {**postgres, "credentials": {"env": "AWS_SECRET_ACCESS_KEY"}},
            "environment variable must start with SEGSYNC_WAREHOUSE_",
        ),
        "pg-prod-password": ({**postgres, "credentials": prod}, unlisted.format(kind="postgres", where=here)),
        "bigquery-token": (
            {"type": "bigquery", "project": "p", "api_endpoint": f"http://{here}", "credentials": prod},
            unlisted.format(kind="bigquery", where=f"http://{here}"),
        ),
        "databricks-token": (
            {
                "type": "databricks",
                "server_hostname": f"http://{here}",
                "http_path": "/sql/1.0/warehouses/w",
                "credentials": prod,
            },
            unlisted.format(kind="databricks", where=f"http://{here}"),
        ),
        "databricks-userinfo": (
            {
                "type": "databricks",
                "server_hostname": f"dbc-1.cloud.databricks.com@{here}",
                "http_path": "/sql/1.0/warehouses/w",
                "credentials": prod,
            },
            "carries credentials",
        ),
        "snowflake-host": (
            {"type": "snowflake", "account": "acme-prod", "user": "u", "host": f"http://{here}", "credentials": prod},
            unlisted.format(kind="snowflake", where=f"http://{here}"),
        ),
        "redshift-endpoint": (
            {"type": "redshift", "database": "d", "workgroup_name": "w", "endpoint_url": f"http://{here}"},
            unlisted.format(kind="redshift", where=f"http://{here}"),
        ),
        "write-key-as-password": (
            {"type": "snowflake", "account": "acme-prod", "user": "u", "credentials": {"secret": WRITE_KEY_SECRET}},
            "secret 'segsync/segment/prod' is not under the planner's prefix 'segsync/warehouse/'",
        ),
    }


def _push(stack: LocalStack, syncs: dict[str, dict[str, Any]]) -> None:
    """Each connection item and a sync reading it, written straight into the table (as the console would)."""
    table = stack.table(os.environ["SYNCS_TABLE"])
    segment = {"type": "segment", "endpoint": "http://127.0.0.1:9", "write_key": {"secret": WRITE_KEY_SECRET}}
    table.put_item(Item=to_item({"kind": CONNECTION_KIND, "name": "segment", **segment}))
    for name, connection in syncs.items():
        table.put_item(Item=to_item({"kind": CONNECTION_KIND, "name": name, **connection}))
        sync = {
            "name": name,
            "object": "user",
            "source": name,
            "destination": "segment",
            "model": "SELECT 1 AS id",
            "key": "id",
        }
        table.put_item(Item=to_item({"kind": SYNC_KIND, **sync}))


def test_attack_items_send_nothing_anywhere_and_leak_nothing(stack, secrets, listener, planner_handler, capfd, caplog):
    # Given connection items naming a listening host of the attacker's and a credential the planner can
    # read (its own AWS key, the production password, a Segment write key), and no host listed
    caplog.set_level(logging.DEBUG)
    attacks = _attacks(listener.port)
    _push(stack, {name: item for name, (item, _) in attacks.items()})

    # When the planner handler is asked to run each of them
    response = planner_handler({"syncs": sorted(attacks), "trigger": "test"}, LambdaContext("segsync-planner", 900))

    # Then each run failed with one line naming the sync, the connection and the reason...
    runs = {run["sync"]: run for run in response["runs"]}
    for name, (_, reason) in attacks.items():
        assert runs[name]["status"] == "failed", name
        error = runs[name]["error"]
        assert "\n" not in error and f"'{name}'" in error and reason in error, (name, error)
    # ...not one byte reached the listener...
    assert (listener.connections, bytes(listener.received)) == (0, b"")
    # ...and no secret appears in the output, the logs or the run items
    out, err = capfd.readouterr()
    items = RunStore(stack.table(os.environ["RUNS_TABLE"]))
    recorded = orjson.dumps([items.runs(name, limit=5) for name in attacks], default=str).decode()
    for place in (out, err, caplog.text, orjson.dumps(response).decode(), recorded):
        assert MARKER not in place


def test_a_listed_host_is_reached_and_an_unlisted_port_of_it_is_not(
    stack, secrets, listener, planner_handler, monkeypatch
):
    # Given a PostgreSQL item on the listening host, with the production password under the planner's prefix
    item = {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": listener.port,
        "database": "d",
        "user": "u",
        "sslmode": "disable",
        "connect_timeout": 1,
        "credentials": {"secret": PROD_SECRET},
    }
    _push(stack, {"listed-pg": item})
    context = LambdaContext("segsync-planner", 900)

    # When the deployment lists the host on another port only, then the host and its port
    monkeypatch.setenv("WAREHOUSE_ALLOWED_HOSTS", f"db.internal, 127.0.0.1:{listener.port + 1}")
    [refused] = planner_handler({"sync": "listed-pg", "trigger": "test"}, context)["runs"]
    untouched = listener.connections
    monkeypatch.setenv("WAREHOUSE_ALLOWED_HOSTS", f"db.internal, 127.0.0.1:{listener.port}")
    [reached] = planner_handler({"sync": "listed-pg", "trigger": "test"}, context)["runs"]

    # Then the first is refused untouched; the second connects (the listener hears PostgreSQL's startup
    # packet, and never answers, so that run fails on the connection, not the policy)
    assert "refused" in refused["error"] and untouched == 0
    assert listener.connections == 1 and b"database" in bytes(listener.received)
    assert reached["status"] == "failed" and "cannot connect to PostgreSQL" in reached["error"]

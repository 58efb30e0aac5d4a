"""Secrets never leak: run the local pipeline with distinctive secrets and grep everything it leaves.

The Segment write key, a Snowflake password, and a key pair's PEM and passphrase are canaries. The
Segment endpoint is hostile: it answers 401, 500s and a 400, and echoes the Authorization header back
in every error body. Then stdout and stderr, every log record, the syncs and runs tables, every chunk
put on the queue, what reached the endpoint's NDJSON, the warehouse (the model's data and segsync's
bookkeeping schema) and the CLI's ``--json`` output are searched. The one place a write key belongs,
the Authorization header of requests to Segment, is checked to carry it (so the test is not vacuous).
A chunk forged to send the sender's own AWS secret key to a listening host is refused on every
receive, and that key appears nowhere either.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import fakesnow
import orjson
import pytest
import snowflake.connector
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.connector.errors import DatabaseError

import segsync.local.run
from segsync.chunks import decode
from segsync.cli import main
from segsync.local.capture import CaptureServer, FaultPlan, _Handler
from segsync.queue import ChunkQueue

MARKER = "SEGSYNC_CANARY"
"""Every canary holds this, so a secret cut short (an error truncated mid-key) is still found."""
WRITE_KEY = f"sk_live_{MARKER}_7f3a9c2e41d8b605"
PASSWORD = f"pw_{MARKER}_c0ffee5e1f2a3b4c"
PASSPHRASE = f"pp_{MARKER}_9d8e7f6a5b4c3d2e"
BAD_USER = "user_000007"
"""The endpoint refuses any batch holding this user with a 400 (the sender bisects down to it)."""


def _encodings(secret: str) -> set[str]:
    """The secret as it could appear: plain, base64 alone, and as HTTP Basic's ``key:`` token."""
    return {
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"{secret}:".encode()).decode(),
    }


def _canaries(*secrets: str) -> set[str]:
    return {MARKER} | {form for secret in secrets for form in _encodings(secret)}


@pytest.fixture
def hostile_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CaptureServer, list[str]]]:
    """A capture endpoint that fails and echoes credentials in its errors; yields it and the auth headers."""
    authorizations: list[str] = []
    answer = _Handler._answer

    def echoing_answer(self: _Handler, status: int, payload: dict[str, Any], *, fault: bool = False) -> None:
        header = self.headers.get("Authorization") or ""
        authorizations.append(header)
        if status >= 400:
            payload = {**payload, "message": f"{payload['message']} (you sent: {header})"}
        answer(self, status, payload, fault=fault)

    monkeypatch.setattr(_Handler, "_answer", echoing_answer)
    faults = FaultPlan(
        sequence=[401, 500, 503, 401],
        retry_after=0.01,
        reject_if=lambda message: message.get("userId") == BAD_USER,
    )
    with CaptureServer(tmp_path / "captured.ndjson", faults=faults) as endpoint:
        yield endpoint, authorizations


@pytest.fixture
def everything(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> dict[str, list[str]]:
    """Collects what a run leaves behind: the stack's tables and queues, chunks, logs as formatted."""
    left: dict[str, list[str]] = {"stack": [], "chunks": [], "segsync log stream": []}
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="segsync")

    # The Powertools handler writes to the sys.stderr of import time, which capfd may not see.
    class Stream:
        def write(self, text: str) -> None:
            left["segsync log stream"].append(text)

        def flush(self) -> None:
            pass

    for handler in logging.getLogger("segsync").handlers:
        monkeypatch.setattr(handler, "stream", Stream())

    real_stack = segsync.local.run.local_stack

    @contextmanager
    def snapshotting_stack(*args: Any) -> Iterator[Any]:
        with real_stack(*args) as stack:
            yield stack
            left["stack"].append(_dump_stack(stack))

    monkeypatch.setattr(segsync.local.run, "local_stack", snapshotting_stack)

    send_all = ChunkQueue.send_all

    def recording_send_all(self: ChunkQueue, bodies: Any) -> int:
        def recorded() -> Iterator[tuple[int, str, int]]:
            for number, body, delay in bodies:
                left["chunks"].append(repr(decode(body)))
                yield number, body, delay

        return send_all(self, recorded())

    monkeypatch.setattr(ChunkQueue, "send_all", recording_send_all)
    return left


def _dump_stack(stack: Any) -> str:
    """Every item of both tables and every message left in the queues (chunks decoded)."""
    parts = []
    for name in ("segsync-syncs", "segsync-runs"):
        table = stack.table(name)
        kwargs: dict[str, Any] = {}
        while True:
            page = table.scan(**kwargs)
            parts.extend(repr(item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    sqs = stack.client("sqs")
    for url in (stack.queue_url, stack.dead_letter_queue_url):
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        ):
            parts.extend(repr(decode(m["Body"])) for m in messages)
    return "\n".join(parts)


def _dump_duckdb(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        return "\n".join(repr(con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()) for schema, name in tables)


def _dump_fakesnow(database: str) -> str:
    with snowflake.connector.connect(account="dump", user="ADMIN", password="x", database=database) as con:
        cursor = con.cursor()
        cursor.execute("SELECT table_catalog, table_schema, table_name FROM information_schema.tables")
        tables = cursor.fetchall()
        dumped = []
        for catalog, schema, name in tables:
            cursor.execute(f"SELECT * FROM {catalog}.{schema}.{name}")
            dumped.append(f"{schema}.{name}: {cursor.fetchall()!r}")
        return "\n".join(dumped)


def _places(
    out: str, err: str, caplog: pytest.LogCaptureFixture, left: dict[str, list[str]], captured: Path
) -> dict[str, str]:
    return {
        "stdout (CLI --json)": out,
        "stderr": err,
        "segsync log stream": "".join(left["segsync log stream"]),
        "log records": "\n".join(repr(vars(record)) + record.getMessage() for record in caplog.records),
        "tables and queues": "\n".join(left["stack"]),
        "chunks": "\n".join(left["chunks"]),
        "messages received by the endpoint": captured.read_text(),
    }


def _leaks(places: dict[str, str], canaries: set[str]) -> dict[str, list[str]]:
    found = {where: sorted(c for c in canaries if c in text) for where, text in places.items()}
    return {where: hits for where, hits in found.items() if hits}


def _point_at(project_file: Path, endpoint: CaptureServer, change: Any = None) -> Path:
    data = yaml.safe_load(project_file.read_text())
    data["connections"]["segment"]["endpoint"] = endpoint.url
    data["connections"]["segment"]["events_per_second"] = 1_000_000
    if change:
        change(data)
    project_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return project_file


# ---------------------------------------------------------------------------------------- DuckDB


def test_the_write_key_never_leaks_even_when_segment_fails_and_echoes_it(
    project_file, small_warehouse, hostile_endpoint, everything, monkeypatch, capfd, caplog
):
    # Given a distinctive write key and an endpoint that fails (401, 500s, a 400) echoing it back
    endpoint, authorizations = hostile_endpoint
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    _point_at(project_file, endpoint)

    # When both demo syncs run locally through the CLI with --json
    code = main(["run", "--local", str(project_file), "--json"])
    out, err = capfd.readouterr()

    # Then the key went where it belongs, the errors really happened and were recorded...
    summary = orjson.loads(out)
    assert code in (0, 1) and [r["sync"] for r in summary["runs"]] == ["demo-users", "demo-events"]
    assert f"Basic {base64.b64encode(f'{WRITE_KEY}:'.encode()).decode()}" in authorizations
    assert {401, 500, 503, 400} <= set(endpoint.statuses)
    tables = "\n".join(everything["stack"])
    assert "Segment answered HTTP 401" in tables  # the run's last_error
    assert "Segment refused it: HTTP 400" in tables  # the rejected record of BAD_USER
    # ...and it appears nowhere else: output, logs, tables, queues, chunks, payloads, the warehouse
    places = _places(out, err, caplog, everything, endpoint.out_path)
    places["warehouse"] = _dump_duckdb(small_warehouse)
    assert _leaks(places, _canaries(WRITE_KEY)) == {}
    assert "(you sent: Basic ***)" in tables  # the echoed header reached segsync, and was masked


# ---------------------------------------------------------------------------------------- Snowflake


@pytest.fixture
def snowflake_warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """fakesnow with the demo-like users table; the account "broken" refuses logins quoting the password.

    Yields the keyword arguments of every login, so the test can check the secrets were really used.
    """
    logins: list[dict[str, Any]] = []
    with fakesnow.patch():
        with snowflake.connector.connect(
            account="seed", user="ADMIN", password="x", database="ANALYTICS", schema="MARTS"
        ) as seed:
            seed.cursor().execute(
                "CREATE TABLE users AS SELECT 'user_' || LPAD(seq4()::varchar, 6, '0') AS user_id, "
                "'user' || seq4() || '@example.com' AS email, 'pro' AS plan "
                "FROM TABLE(GENERATOR(ROWCOUNT => 40))"
            )
        fake_connect = snowflake.connector.connect

        def login(**kwargs: Any) -> Any:
            logins.append(kwargs)
            if kwargs["account"] == "broken":
                # What a real connector error may do: quote what it was given.
                raise DatabaseError(msg=f"Incorrect username or password was specified: {kwargs.get('password')}")
            return fake_connect(**kwargs)

        with mock.patch("snowflake.connector.connect", login):
            yield logins


def _key_pair(passphrase: str) -> tuple[str, str]:
    """An encrypted PEM, and a slice of its body that would identify it in a leak."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()
    return pem, pem.splitlines()[5]


def test_snowflake_credentials_never_leak(
    project_file, hostile_endpoint, snowflake_warehouse, everything, monkeypatch, capfd, caplog
):
    # Given Snowflake connections: a password, a key pair with a passphrase, and a login that fails
    # with an error quoting the password; all secrets distinctive
    endpoint, _ = hostile_endpoint
    pem, pem_line = _key_pair(PASSPHRASE)
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_SF_PASSWORD_CREDENTIALS", json.dumps({"password": PASSWORD}))
    monkeypatch.setenv(
        "SEGSYNC_WAREHOUSE_SF_KEY_PAIR_CREDENTIALS",
        json.dumps({"private_key": pem, "private_key_passphrase": PASSPHRASE}),
    )

    def snowflake(name: str, account: str, credentials: str) -> dict[str, Any]:
        return {
            "type": "snowflake",
            "account": account,
            "user": "SEGSYNC",
            "database": "ANALYTICS",
            "schema": "MARTS",
            "credentials": {"env": credentials},
        }

    def sync(name: str, source: str, model: str = "SELECT * FROM users") -> dict[str, Any]:
        return {
            "name": name,
            "object": "user",
            "source": source,
            "destination": "segment",
            "model": model,
            "key": "user_id",
            "traits": {"email": "email", "plan": "plan"},
        }

    def snowflake_project(data: dict[str, Any]) -> None:
        data["connections"] = {
            "segment": data["connections"]["segment"],
            "by_password": snowflake("by_password", "acme-xy12345", "SEGSYNC_WAREHOUSE_SF_PASSWORD_CREDENTIALS"),
            "by_key_pair": snowflake("by_key_pair", "acme-xy12345", "SEGSYNC_WAREHOUSE_SF_KEY_PAIR_CREDENTIALS"),
            "broken": snowflake("broken", "broken", "SEGSYNC_WAREHOUSE_SF_PASSWORD_CREDENTIALS"),
        }
        data["syncs"] = [
            sync("sf-password", "by_password"),
            sync("sf-key-pair", "by_key_pair"),
            sync("sf-broken-login", "broken"),
            sync("sf-bad-model", "by_password", model="SELECT * FROM no_such_table"),
        ]

    _point_at(project_file, endpoint, snowflake_project)

    # When every sync runs locally through the CLI with --json
    code = main(["run", "--local", str(project_file), "--json"])
    out, err = capfd.readouterr()

    # Then the secrets reached the connector, and the failures were recorded as failed runs...
    summary = {r["sync"]: r for r in orjson.loads(out)["runs"]}
    assert code == 1
    assert any(login.get("password") == PASSWORD for login in snowflake_warehouse)
    assert any(isinstance(login.get("private_key"), bytes) for login in snowflake_warehouse)
    assert summary["sf-broken-login"]["status"] == "failed"
    assert summary["sf-bad-model"]["status"] == "failed"
    assert summary["sf-password"]["sent"] > 0 and summary["sf-key-pair"]["sent"] > 0
    # ...and none of them appears anywhere, the warehouse's bookkeeping schema included
    places = _places(out, err, caplog, everything, endpoint.out_path)
    places["warehouse"] = _dump_fakesnow("ANALYTICS")
    assert "SYNC_RUNS" in places["warehouse"]  # the run history segsync keeps in the warehouse
    canaries = _canaries(WRITE_KEY, PASSWORD, PASSPHRASE) | {pem_line}
    assert _leaks(places, canaries) == {}
    assert "Incorrect username or password was specified: ***" in summary["sf-broken-login"]["error"]


# ---------------------------------------------------------------------------------------- forged chunk


def test_a_chunk_forged_to_carry_the_senders_aws_key_elsewhere_sends_nothing_and_leaks_nothing(
    project_file, small_warehouse, hostile_endpoint, monkeypatch, capfd, caplog
):
    # Given the sender's own AWS secret key is a canary, a run of demo-users planned on a local stack,
    # and its chunks replaced by one forged by someone who may send to the queue: destination a host of
    # theirs that listens, write key the sender's AWS_SECRET_ACCESS_KEY
    from segsync.chunks import dump_row, encode, header
    from segsync.config import load_project
    from segsync.local.driver import LocalDriver, load_handler
    from segsync.local.run import project_endpoints
    from segsync.local.stack import RUNS_TABLE, SYNCS_TABLE, local_stack
    from segsync.store import RunStore, SyncStore

    from ..conftest import point_at

    elsewhere, authorizations = hostile_endpoint
    aws_key = f"aws_{MARKER}_3b9e0c1d7a2f4e68"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_key)  # moto takes any credentials
    monkeypatch.setenv("SEGMENT_WRITE_KEY", WRITE_KEY)
    caplog.set_level(logging.DEBUG)
    with CaptureServer(project_file.parent / "allowed.ndjson") as allowed:
        project = load_project(point_at(project_file, allowed.url))
        with local_stack(project_endpoints(project)) as stack:
            SyncStore(stack.table(SYNCS_TABLE)).push(project)
            sqs = stack.client("sqs")
            driver = LocalDriver(sqs, stack.queue_url, load_handler("planner"), load_handler("sender"), retry_delay_s=0)
            [run] = driver.plan({"syncs": ["demo-users"], "trigger": "test"})["runs"]
            planned = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)["Messages"]
            for message in planned:
                sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
            real = decode(planned[0]["Body"])
            forged_destination = {
                **real.destination,
                "endpoint": elsewhere.url,
                "write_key": {"env": "AWS_SECRET_ACCESS_KEY"},
            }
            forged = encode(
                real.run_id,
                real.number,
                header(real.sync, forged_destination, real.columns),
                [dump_row(r) for r in real.rows],
            )
            sqs.send_message(QueueUrl=stack.queue_url, MessageBody=forged)

            # When the sender gets it, as often as the queue hands it over
            stats = driver.drain()
            parked = sqs.get_queue_attributes(
                QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
            left = _dump_stack(stack)
            error = RunStore(stack.table(RUNS_TABLE)).run("demo-users", run["run_id"])["last_error"]
        out, err = capfd.readouterr()

    # Then it was refused on each of its 5 receives and parked in the DLQ; nothing reached either endpoint;
    # the run says why; and the AWS key is in no output, log line, table or queue
    assert (stats.records, stats.failed_records, parked) == (5, 5, "1")
    assert authorizations == [] and allowed.requests == 0
    assert "must start with SEGMENT_ (e.g. SEGMENT_WRITE_KEY), not AWS_SECRET_ACCESS_KEY" in error
    places = {
        "stdout": out,
        "stderr": err,
        "log records": "\n".join(repr(vars(record)) + record.getMessage() for record in caplog.records),
        "tables and queues (the DLQ included)": left,
    }
    assert "AWS_SECRET_ACCESS_KEY" in left  # the forged chunk, parked in the DLQ: only the variable's name
    assert _leaks(places, _canaries(aws_key, WRITE_KEY)) == {}

"""One incremental scenario, through the CLI and the whole local pipeline, on each warehouse an engine runs here.

A project syncs a customers table (text key, a decimal, a timestamp with time zone) to the capture
endpoint with ``segsync run FILE --local --json``: the first run sends every row, a rerun sends nothing,
changing 1% of the rows sends exactly those, state lives in the warehouse's ``SEGSYNC`` schema, and every
message passes Segment's rules. ``preview``, ``runs`` and ``rejected`` read the same warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import yaml

from segsync.cli import main
from segsync.local.capture import read_captured
from segsync.warehouse import redshift as redshift_adapter
from tests.redshift_data_api import DataApi
from tests.segment_spec import problems

CUSTOMERS = 500
CHANGED = [f"cus_{i:06d}" for i in range(100, CUSTOMERS + 1, 100)]
"""1% of the customers."""


@dataclass(frozen=True)
class Warehouse:
    """What the scenario needs of one engine: its connection, and SQL run as its administrator."""

    connection: dict[str, Any]
    admin: Callable[[str], list[tuple[Any, ...]]]
    customers: str
    """The customers table as a model names it."""


@pytest.fixture
def postgres(postgres_server, postgres_connection) -> Warehouse:
    def admin(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(postgres_server.admin_dsn(postgres_connection.database), autocommit=True) as con:
            cursor = con.execute(sql)
            return cursor.fetchall() if cursor.description else []

    admin(
        "CREATE TABLE customers AS SELECT 'cus_' || LPAD(i::text, 6, '0') AS customer_id, "
        "'c' || i || '@example.com' AS email, (i % 97)::NUMERIC(12, 2) + 0.25 AS lifetime_value, "
        "TIMESTAMPTZ '2024-03-01 12:00:00.123456+02' + i * INTERVAL '1 minute' AS signed_up_at "
        f"FROM generate_series(1, {CUSTOMERS}) AS i; GRANT SELECT ON customers TO segsync"
    )
    return Warehouse(postgres_connection.model_dump(by_alias=True, exclude_none=True), admin, "customers")


@pytest.fixture
def redshift(postgres, postgres_server, monkeypatch) -> Iterator[Warehouse]:
    """The same customers, read through the Redshift adapter and the Data API's protocol (its SQL run by
    the real PostgreSQL server: see tests/redshift_data_api.py)."""
    monkeypatch.setattr(redshift_adapter, "FIRST_POLL_S", 0.001)
    with DataApi(postgres_server) as api:
        connection = {"type": "redshift", "cluster_identifier": "analytics", "database":
                      postgres.connection["database"], "db_user": "segsync", "region": "us-east-1",
                      "endpoint_url": api.url}  # fmt: skip
        yield Warehouse(connection, postgres.admin, "customers")


@pytest.fixture
def bigquery(bigquery_emulator, bigquery_connection) -> Warehouse:
    """The customers in bqemulator's MODELS dataset, read as a service account (see tests/bigquery_emulator.py)."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery as bq

    client = bq.Client(project=bigquery_connection.project, credentials=AnonymousCredentials(),
                       client_options=ClientOptions(api_endpoint=bigquery_emulator.url))  # fmt: skip

    def admin(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in client.query(sql).result()]

    admin(
        "CREATE TABLE MODELS.customers AS SELECT CONCAT('cus_', LPAD(CAST(i AS STRING), 6, '0')) AS customer_id, "
        "CONCAT('c', CAST(i AS STRING), '@example.com') AS email, "
        "CAST(MOD(i, 97) AS NUMERIC) + NUMERIC '0.25' AS lifetime_value, "
        "TIMESTAMP_ADD(TIMESTAMP '2024-03-01 12:00:00.123456+02', INTERVAL i MINUTE) AS signed_up_at "
        f"FROM UNNEST(GENERATE_ARRAY(1, {CUSTOMERS})) AS i"
    )
    return Warehouse(bigquery_connection.model_dump(by_alias=True, exclude_none=True), admin, "MODELS.customers")


def _project(tmp_path: Path, warehouse: Warehouse, endpoint: str) -> Path:
    project = {
        "version": 1,
        "connections": {
            "warehouse": warehouse.connection,
            "segment": {"type": "segment", "endpoint": endpoint, "write_key": {"env": "SEGMENT_WRITE_KEY"},
                        "events_per_second": 1_000_000},
        },
        "syncs": [
            {"name": "customers", "object": "user", "source": "warehouse", "destination": "segment",
             "model": f"SELECT customer_id, email, lifetime_value, signed_up_at FROM {warehouse.customers}",
             "key": "customer_id",
             "traits": {"email": "email", "lifetime_value": "lifetime_value", "signed_up_at": "signed_up_at"}},
        ],
    }  # fmt: skip
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def _run(project: Path, capsys) -> dict[str, Any]:
    code = main(["run", str(project), "--local", "--json"])
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0, out
    [run] = out["runs"]
    return run


def _scenario(warehouse: Warehouse, tmp_path: Path, capture, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "warehouse-write-key")
    project = _project(tmp_path, warehouse, capture.url)

    # When the sync first runs, Then every customer is sent, each message in Segment's spec
    first = _run(project, capsys)
    messages = read_captured(capture.out_path)
    assert (first["status"], first["new"], first["sent"]) == ("committed", CUSTOMERS, CUSTOMERS)
    assert len(messages) == CUSTOMERS
    assert [p for m in messages for p in problems(m, received=True)] == []
    one = next(m for m in messages if m["userId"] == "cus_000001")
    # (decimals exact, timestamps in UTC ISO-8601)
    assert one["traits"]["lifetime_value"] == 1.25
    assert one["traits"]["signed_up_at"] == "2024-03-01T10:01:00.123456+00:00"

    # When it runs again with nothing changed, Then nothing is sent
    again = _run(project, capsys)
    assert (again["sent"], again["unchanged"]) == (0, CUSTOMERS)

    # When 1% of the customers change, Then exactly those are sent
    warehouse.admin(
        f"UPDATE {warehouse.customers} SET lifetime_value = lifetime_value + 1 "
        f"WHERE customer_id IN ({', '.join(repr(k) for k in CHANGED)})"
    )
    changed = _run(project, capsys)
    sent = read_captured(capture.out_path)[CUSTOMERS:]
    assert (changed["changed"], changed["sent"]) == (len(CHANGED), len(CHANGED))
    assert sorted(m["userId"] for m in sent) == CHANGED

    # And the state is in the warehouse's SEGSYNC schema, one row per customer
    assert warehouse.admin("SELECT COUNT(*) FROM SEGSYNC.SYNC_STATE WHERE SYNC = 'customers'") == [(CUSTOMERS,)]

    # And runs, rejected and preview read the same warehouse
    assert main(["runs", str(project), "--sync", "customers", "--json"]) == 0
    runs = orjson.loads(capsys.readouterr().out)["runs"]
    assert [(r["status"], r["sent"]) for r in runs] == [("committed", len(CHANGED)), ("committed", 0),
                                                        ("committed", CUSTOMERS)]  # fmt: skip
    assert main(["rejected", str(project), "--sync", "customers", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["rejected"] == []
    # (the next run sends nothing, so the key is previewed as the whole model would send it)
    assert main(["preview", str(project), "--sync", "customers", "--all", "--key", "cus_000100", "--json"]) == 0
    [payload] = orjson.loads(capsys.readouterr().out)["payloads"]
    assert payload["userId"] == "cus_000100" and payload["traits"]["lifetime_value"] == 4.25


def test_postgres_syncs_only_what_changed(postgres, tmp_path, capture, capsys, monkeypatch):
    _scenario(postgres, tmp_path, capture, capsys, monkeypatch)


def test_redshift_syncs_only_what_changed(redshift, tmp_path, capture, capsys, monkeypatch):
    _scenario(redshift, tmp_path, capture, capsys, monkeypatch)


def test_bigquery_syncs_only_what_changed(bigquery, tmp_path, capture, capsys, monkeypatch):
    _scenario(bigquery, tmp_path, capture, capsys, monkeypatch)


def test_a_failing_model_names_the_sync_in_one_line(postgres, tmp_path, capture, capsys, monkeypatch):
    # Given a sync whose model reads a table that does not exist
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "warehouse-write-key")
    project = _project(tmp_path, postgres, capture.url)
    data = yaml.safe_load(project.read_text())
    data["syncs"][0]["model"] = "SELECT * FROM no_such_table"
    project.write_text(json.dumps(data))

    # When it is previewed, Then one line names the sync and quotes PostgreSQL
    assert main(["preview", str(project), "--sync", "customers"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("segsync: error: sync 'customers': model query failed: relation \"no_such_table\" does not exist")

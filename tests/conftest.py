"""Fixtures shared by every tier: no real AWS credentials, no cached clients across tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_lambda_powertools.utilities import parameters

from segsync import handlers, settings
from segsync.config import BigQueryConnection, DatabricksConnection, PostgresConnection
from segsync.local.capture import CaptureServer
from segsync.local.demo import build_warehouse
from segsync.observability import metrics

from . import bigquery_emulator as bq
from . import databricks_emulator as dbx
from . import postgres_server as pg

EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and quiet Powertools; boto3 clients are cached per endpoint, so clear them."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "SEGMENT_WRITE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "segsync")
    yield
    settings.aws_client.cache_clear()
    settings.aws_resource.cache_clear()
    handlers.sender_for.cache_clear()
    parameters.clear_caches()
    # With POWERTOOLS_METRICS_DISABLED, Powertools never clears its buffer, and prints it to stdout
    # (into some later test's --json output) once a metric holds 100 values.
    metrics.clear_metrics()


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[CaptureServer]:
    """A Segment-compatible endpoint on loopback, recording what it accepts."""
    with CaptureServer(tmp_path / "captured.ndjson") as server:
        yield server


@pytest.fixture
def small_warehouse(tmp_path: Path) -> Path:
    """The demo's tables at a test's size: 300 users, 2,000 events (same deterministic rows)."""
    path = tmp_path / "warehouse.duckdb"
    build_warehouse(path, users=300, events=2_000)
    return path


@pytest.fixture
def project_file(tmp_path: Path, small_warehouse: Path) -> Path:
    """The demo project file pointed at the small warehouse; the write key comes from SEGMENT_WRITE_KEY."""
    project = yaml.safe_load((Path(__file__).resolve().parents[1] / "demo" / "segsync.yml").read_text())
    project["connections"]["warehouse"]["path"] = str(small_warehouse)
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def point_at(project_file: Path, endpoint: str, events_per_second: int = 1_000_000, **sync_changes: Any) -> Path:
    """Point the project file's Segment destination at ``endpoint`` (unpaced: a capture endpoint has no
    workspace budget), applying ``sync_changes`` (``demo_users=callable``) to the named syncs."""
    data = yaml.safe_load(project_file.read_text())
    data["connections"]["segment"]["endpoint"] = endpoint
    data["connections"]["segment"]["events_per_second"] = events_per_second
    for name, change in sync_changes.items():
        change(next(s for s in data["syncs"] if s["name"] == name.replace("_", "-")))
    project_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return project_file


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.PostgresServer]:
    """One real PostgreSQL server for the whole session (about a second to start), stopped at its end."""
    try:
        server = pg.start()
    except RuntimeError as exc:
        pytest.fail(f"no PostgreSQL server could be started: {exc}")
    yield server
    pg.stop(server)


@pytest.fixture
def postgres_connection(
    postgres_server: pg.PostgresServer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> PostgresConnection:
    """A fresh database for this test, and segsync's connection to it (its password in the environment)."""
    database = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]
    postgres_server.create_database(database)
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_POSTGRES_CREDENTIALS", json.dumps({"password": pg.PASSWORD}))
    return PostgresConnection.model_validate(
        {"type": "postgres", "host": postgres_server.host, "port": postgres_server.port, "database": database,
         "user": pg.USER, "sslmode": "disable", "credentials": {"env": "SEGSYNC_WAREHOUSE_POSTGRES_CREDENTIALS"}}
    )  # fmt: skip


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bq.Emulator]:
    """bqemulator for the whole session (a few seconds to start), stopped at its end."""
    try:
        emulator = bq.start(tmp_path_factory.mktemp("bqemulator") / "log")
    except RuntimeError as exc:
        pytest.fail(f"no BigQuery emulator could be started: {exc}")
    yield emulator
    bq.stop(emulator)


@pytest.fixture(scope="session")
def bigquery_tokens() -> Iterator[bq.TokenEndpoint]:
    endpoint = bq.TokenEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def bigquery_connection(
    bigquery_emulator: bq.Emulator, bigquery_tokens: bq.TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> BigQueryConnection:
    """segsync's connection to the emulator, as a service account whose key is in the environment; the
    bookkeeping dataset (SEGSYNC) and the models' (MODELS) start empty."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    admin = bigquery.Client(project=bq.PROJECT, credentials=AnonymousCredentials(),
                            client_options=ClientOptions(api_endpoint=bigquery_emulator.url))  # fmt: skip
    for dataset in ("SEGSYNC", "MODELS"):
        admin.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
    admin.create_dataset("MODELS")
    admin.close()
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_BIGQUERY_CREDENTIALS", bigquery_tokens.service_account())
    return BigQueryConnection.model_validate(
        {"type": "bigquery", "project": bq.PROJECT, "location": "US", "api_endpoint": bigquery_emulator.url,
         "credentials": {"env": "SEGSYNC_WAREHOUSE_BIGQUERY_CREDENTIALS"}}
    )  # fmt: skip


@pytest.fixture(scope="session")
def databricks_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dbx.Emulator]:
    """The SQL Statement Execution API on a local Spark for the whole session (Spark takes ~15 s to start)."""
    try:
        emulator = dbx.start(tmp_path_factory.mktemp("spark"))
    except RuntimeError as exc:
        pytest.fail(f"no Databricks emulator could be started: {exc}")
    yield emulator
    dbx.stop(emulator)


@pytest.fixture
def databricks_connection(databricks_emulator: dbx.Emulator, monkeypatch: pytest.MonkeyPatch) -> DatabricksConnection:
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_DATABRICKS_CREDENTIALS", json.dumps({"token": dbx.TOKEN}))
    return DatabricksConnection.model_validate(
        {"type": "databricks", "server_hostname": databricks_emulator.url, "http_path": dbx.HTTP_PATH,
         "credentials": {"env": "SEGSYNC_WAREHOUSE_DATABRICKS_CREDENTIALS"}}
    )  # fmt: skip

"""Integration fixtures: in-process moto (``mock_aws``) with the template's tables and queues; a DuckDB state."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from moto import mock_aws

from segsync.config import DuckDBConnection, load_project
from segsync.local.capture import CaptureServer
from segsync.local.driver import load_handler
from segsync.local.stack import LocalStack, create_resources
from segsync.state import WarehouseState
from segsync.store import RunStore, SyncStore
from segsync.warehouse.duckdb import DuckDBWarehouse

from ..conftest import EVENTS

SAMPLE_RUN = "20261129T000000Z-sample"
SAMPLE_SYNC = "sample-users"
"""The run and sync of events/sender-sqs.json's chunk (a sync of its own, so its run never holds the demo's lock)."""
"""The run of the sample chunk in events/sender-sqs.json."""


@pytest.fixture
def duckdb_state(tmp_path: Path) -> Iterator[WarehouseState]:
    """Bookkeeping in a new, empty DuckDB file (its schema not made yet)."""
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as warehouse:
        yield WarehouseState(warehouse, "SEGSYNC")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """Tables and queues as template.yaml shapes them, in moto, with the handlers' environment set."""
    with mock_aws():
        created = create_resources(None)
        for name, value in created.env.items():
            monkeypatch.setenv(name, value)
        yield created


@pytest.fixture
def pushed_project(stack: LocalStack, project_file: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch):
    """The small demo project in the syncs table, its destination pointed at the capture endpoint."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "test-write-key")
    monkeypatch.setenv("SEGMENT_ALLOWED_ENDPOINTS", capture.url)
    project = load_project(project_file)
    # A capture endpoint has no workspace budget: unpaced, every chunk of a wave is released at once.
    segment = project.connections["segment"].model_copy(
        update={"endpoint": capture.url, "events_per_second": 1_000_000}
    )
    project = project.model_copy(update={"connections": {**project.connections, "segment": segment}})
    SyncStore(stack.table(os.environ["SYNCS_TABLE"])).push(project)
    return project


def begin_run(runs: RunStore, sync: str, run_id: str) -> None:
    """A run as the planner begins it: it holds the sync's lock, so the senders deliver its chunks."""
    assert runs.begin(sync, run_id, 3_600, trigger="test") is None


def counted(runs: RunStore, run_id: str) -> dict[str, int]:
    """What the senders counted for a run: the sums of its chunk items (the planner's tick adds the same)."""
    chunks = runs.chunks(run_id, 1, 99_999_999)
    totals = {name: sum(c[name] for c in chunks) for name in ("rows", "sent", "rejected", "batches")}
    return {"chunks": len(chunks), **totals}


@pytest.fixture(scope="session")
def planner_handler():
    return load_handler("planner")


@pytest.fixture(scope="session")
def sender_handler():
    return load_handler("sender")


@pytest.fixture
def sqs_event_factory(capture, monkeypatch):
    """The sample SQS event from events/, pointed at the capture endpoint (or ``endpoint``), which the sender is
    allowed to post to; tweak its chunk as needed."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "test-write-key")
    sample = orjson.loads((EVENTS / "sender-sqs.json").read_bytes())

    def make(
        *, endpoint: str | None = None, rows: Any = None, copies: int = 1, forged: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        event = copy.deepcopy(sample)
        record = event["Records"][0]
        chunk = orjson.loads(record["body"])
        chunk["dest"]["endpoint"] = endpoint or capture.url
        # The sender may post there, as the stack's SegmentAllowedEndpoints would let it...
        monkeypatch.setenv("SEGMENT_ALLOWED_ENDPOINTS", chunk["dest"]["endpoint"])
        # ...unless the test forges the destination afterwards, as someone who may send to the queue could.
        chunk["dest"].update(forged or {})
        if rows is not None:
            chunk["rows"] = rows
        record["body"] = orjson.dumps(chunk).decode()
        event["Records"] = [{**record, "messageId": f"{record['messageId']}-{i}"} for i in range(copies)]
        return event

    return make

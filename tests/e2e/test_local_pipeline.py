"""The whole local pipeline: DuckDB → planner → SQS (moto server) → sender → capture endpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import pytest
import yaml

from segsync.cli import main
from segsync.config import load_project
from segsync.local.capture import CaptureServer, FaultPlan, read_captured
from segsync.local.run import run_local

from ..conftest import point_at


@pytest.fixture
def local_project(project_file: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small demo project with its Segment destination at the capture endpoint."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "e2e-write-key")
    return point_at(project_file, capture.url)


def _well_formed(message: dict) -> bool:
    """What Segment needs to keep a message (a 200 alone does not mean it was kept)."""
    has_identity = isinstance(message.get("userId"), str) or isinstance(message.get("anonymousId"), str)
    common = has_identity and len(message["messageId"]) <= 100 and datetime.fromisoformat(message["sentAt"])
    if message["type"] == "identify":
        return bool(common) and isinstance(message["traits"], dict)
    if message["type"] == "track":
        return (
            bool(common) and bool(message["event"]) and datetime.fromisoformat(message["timestamp"]).tzinfo is not None
        )
    return False


def test_every_demo_row_arrives_once_as_a_well_formed_segment_message(local_project, capture, small_warehouse):
    # Given the small demo warehouse (300 users, 2,000 events) and both demo syncs
    project = load_project(local_project)

    # When the whole pipeline runs locally
    report = run_local(project)

    # Then every row arrived exactly once, well formed, and the summary agrees with the endpoint
    messages = read_captured(capture.out_path)
    assert report.ok
    assert [(r.sync, r.rows_read, r.sent, r.rejected) for r in report.runs] == [
        ("demo-users", 300, 300, 0),
        ("demo-events", 2_000, 2_000, 0),
    ]
    assert len(messages) == 2_300
    assert len({m["messageId"] for m in messages}) == 2_300
    assert all(_well_formed(m) for m in messages)
    identifies = {m["userId"]: m for m in messages if m["type"] == "identify"}
    tracks = {m["properties"]["sku"] + m["timestamp"]: m for m in messages if m["type"] == "track"}
    assert len(identifies) == 300 and len(tracks) == 2_000


def test_values_reach_segment_as_the_warehouse_holds_them(local_project, capture, small_warehouse):
    # Given one user and one event as the warehouse has them
    with duckdb.connect(str(small_warehouse), read_only=True) as con:
        email, plan, created_at, ltv, active = con.execute(
            "SELECT email, plan, created_at, lifetime_value, is_active FROM users WHERE user_id = 'user_000042'"
        ).fetchone()
        user_id, event, occurred_at, revenue = con.execute(
            "SELECT user_id, event_name, occurred_at, revenue FROM events WHERE event_id = 'evt_00000007'"
        ).fetchone()

    # When the pipeline runs
    run_local(load_project(local_project))

    # Then the identify carries the traits and the track carries event time and exact money
    messages = read_captured(capture.out_path)
    identify = next(m for m in messages if m["type"] == "identify" and m["userId"] == "user_000042")
    assert identify["traits"]["email"] == email and identify["traits"]["plan"] == plan
    assert datetime.fromisoformat(identify["traits"]["createdAt"]) == created_at.replace(tzinfo=UTC)
    assert Decimal(str(identify["traits"]["lifetimeValue"])) == ltv
    assert identify["traits"]["isActive"] is active
    assert identify["traits"]["source"] == "warehouse"
    track = next(
        m
        for m in messages
        if m["type"] == "track" and m["timestamp"] == occurred_at.replace(tzinfo=UTC).isoformat(timespec="milliseconds")
    )
    assert (track["userId"], track["event"]) == (user_id, event)
    assert Decimal(str(track["properties"]["revenue"])) == revenue


def test_transient_segment_faults_are_retried_and_nothing_is_lost_or_sent_twice(local_project, tmp_path, monkeypatch):
    # Given an endpoint that answers 500, then 429 with Retry-After, then resets a connection
    faults = FaultPlan(sequence=[500, 429, "reset", "ok", 503], retry_after=0.05)
    with CaptureServer(tmp_path / "flaky.ndjson", faults=faults) as flaky:
        data = yaml.safe_load(local_project.read_text())
        data["connections"]["segment"]["endpoint"] = flaky.url
        local_project.write_text(yaml.safe_dump(data, sort_keys=False))

        # When the pipeline runs
        report = run_local(load_project(local_project))
        messages = read_captured(flaky.out_path)

    # Then every row was delivered exactly once and the run counts match what the endpoint saw
    assert report.ok
    assert len(messages) == len({m["messageId"] for m in messages}) == 2_300
    assert sum(r.sent for r in report.runs) == 2_300


def test_segsync_run_local_prints_a_json_summary_for_the_named_sync(local_project, capture, capsys):
    # When the CLI runs one sync with --json
    code = main(["run", "--local", str(local_project), "--sync", "demo-users", "--json"])

    # Then it exits 0 and prints a machine-readable summary of that sync only
    summary = orjson.loads(capsys.readouterr().out)
    assert code == 0 and summary["ok"] is True
    assert [(r["sync"], r["sent"], r["status"]) for r in summary["runs"]] == [("demo-users", 300, "committed")]
    assert capture.messages == 300


def test_segsync_demo_sends_every_demo_row_to_another_endpoint(capture, capsys, tmp_path):
    # Given an independent Segment-compatible endpoint (with no rate limit to respect)
    # When the demo runs against it with --json
    argv = [
        "demo",
        "--json",
        "--dir",
        str(tmp_path),
        "--endpoint",
        capture.url,
        "--events-per-second",
        "1000000",
    ]
    code = main(argv)

    # Then every demo row arrived there, once
    summary = orjson.loads(capsys.readouterr().out)
    expected = sum(r["rows_read"] for r in summary["runs"])
    assert code == 0 and summary["ok"] is True and summary["endpoint"] == capture.url
    assert expected == 55_000
    messages = read_captured(capture.out_path)
    assert len(messages) == len({m["messageId"] for m in messages}) == expected

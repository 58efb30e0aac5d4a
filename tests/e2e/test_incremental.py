"""Incremental syncs through the whole local pipeline: only changes go out, and only delivered rows commit."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from segsync.config import load_project
from segsync.local.capture import CaptureServer, FaultPlan, read_captured
from segsync.local.run import run_local

from ..conftest import point_at


def _project(project_file: Path, endpoint: str, **sync_changes):
    return load_project(point_at(project_file, endpoint, **sync_changes))


def _state_rows(warehouse: Path, sync: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT COUNT(*) FROM SEGSYNC.SYNC_STATE WHERE SYNC = ?", [sync]).fetchone()[0]


@pytest.fixture(autouse=True)
def write_key(monkeypatch):
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "incremental-write-key")


def test_a_second_run_with_no_changes_sends_nothing(project_file, capture, small_warehouse):
    # Given a first run that delivered every row
    project = _project(project_file, capture.url)
    first = run_local(project)
    assert [r.sent for r in first.runs] == [300, 2_000]

    # When the syncs run again with nothing changed
    second = run_local(project)

    # Then nothing is sent and every row is counted unchanged
    assert second.ok
    assert [(r.sent, r.new, r.changed, r.unchanged) for r in second.runs] == [
        (0, 0, 0, 300),
        (0, 0, 0, 2_000),
    ]
    assert capture.messages == 2_300


def test_changing_one_percent_of_users_sends_exactly_those(project_file, capture, small_warehouse):
    # Given a synced warehouse, then 3 of its 300 users change plan
    project = _project(project_file, capture.url)
    run_local(project, ["demo-users"])
    with duckdb.connect(str(small_warehouse)) as con:
        changed = [
            r[0]
            for r in con.execute(
                "SELECT user_id FROM users WHERE user_id IN ('user_000007', 'user_000100', 'user_000299') ORDER BY 1"
            ).fetchall()
        ]
        con.execute(
            "UPDATE users SET plan = 'enterprise-plus' WHERE user_id IN ('user_000007', 'user_000100', 'user_000299')"
        )
    before = capture.messages

    # When the sync runs again
    report = run_local(project, ["demo-users"])

    # Then exactly those three identify calls go out, carrying the new plan
    sent = read_captured(capture.out_path)[before:]
    assert sorted(m["userId"] for m in sent) == changed
    assert {m["traits"]["plan"] for m in sent} == {"enterprise-plus"}
    assert (report.runs[0].changed, report.runs[0].unchanged, report.runs[0].sent) == (3, 297, 3)


def test_a_change_in_an_unmapped_column_sends_nothing(project_file, capture, small_warehouse):
    # Given demo-users maps no column called "note", and a synced warehouse
    project = _project(project_file, capture.url)
    with duckdb.connect(str(small_warehouse)) as con:
        con.execute("ALTER TABLE users ADD COLUMN note VARCHAR")
    run_local(project, ["demo-users"])
    with duckdb.connect(str(small_warehouse)) as con:
        con.execute("UPDATE users SET note = 'called on Monday'")

    # When it runs again, Then nothing is sent: the row hash covers the mapped columns only
    assert run_local(project, ["demo-users"]).runs[0].sent == 0


def test_a_mapping_change_resends_the_affected_users(project_file, capture, small_warehouse):
    # Given a synced warehouse
    run_local(_project(project_file, capture.url), ["demo-users"])

    # When the sync's mapping names its traits in snake_case instead of camelCase
    def rename(sync):
        sync["normalization"] = "snake_case"

    report = run_local(_project(project_file, capture.url, demo_users=rename), ["demo-users"])

    # Then every user is re-sent with the renamed traits
    sent = read_captured(capture.out_path)[300:]
    assert report.runs[0].changed == 300 and len(sent) == 300
    assert all("created_at" in m["traits"] and "createdAt" not in m["traits"] for m in sent)


def test_appended_events_go_once_and_new_events_follow(project_file, capture, small_warehouse):
    # Given a synced events table, then ten new events and one edited old event
    project = _project(project_file, capture.url)
    run_local(project, ["demo-events"])
    with duckdb.connect(str(small_warehouse)) as con:
        con.execute(
            "INSERT INTO events SELECT 'evt_new_' || i, 'user_000001', 'Signed In', "
            "TIMESTAMP '2026-01-01' + to_seconds(i), 'SKU-0001', 1, 1.00, '/' FROM range(10) t(i)"
        )
        con.execute("UPDATE events SET revenue = 999 WHERE event_id = 'evt_00000001'")

    # When the sync runs again
    report = run_local(project, ["demo-events"])

    # Then only the ten new events are appended (an event, once sent, is never sent again)
    sent = read_captured(capture.out_path)[2_000:]
    assert report.runs[0].new == 10 and len(sent) == 10
    assert all(m["event"] == "Signed In" for m in sent)


def test_a_full_resync_resends_users_under_new_ids_and_events_under_their_own(project_file, capture, small_warehouse):
    # Given synced users and events
    project = _project(project_file, capture.url)
    run_local(project)
    first = read_captured(capture.out_path)
    first_users = {m["messageId"] for m in first if m["type"] == "identify"}
    first_events = {m["messageId"] for m in first if m["type"] == "track"}

    # When a full resync is asked for
    report = run_local(project, full_resync=True)

    # Then every row goes out again: identifies under new ids (a deliberate resend Segment must not drop
    # as a copy), events under their own (an event is one event, so Segment drops the copies)
    again = read_captured(capture.out_path)[len(first) :]
    assert [r.sent for r in report.runs] == [300, 2_000]
    assert {m["messageId"] for m in again if m["type"] == "identify"}.isdisjoint(first_users)
    assert {m["messageId"] for m in again if m["type"] == "track"} == first_events


def test_a_sender_that_cannot_deliver_leaves_state_untouched_and_the_next_run_delivers_the_same_ids(
    project_file, small_warehouse, tmp_path, monkeypatch
):
    # Given chunks of 50 users and an endpoint that accepts one batch, then answers 503 to everything
    monkeypatch.setenv("CHUNK_ROWS", "50")
    faults = FaultPlan(sequence=["ok"], error_rate=1.0, error_status=503)
    with CaptureServer(tmp_path / "failing.ndjson", faults=faults) as failing:
        broken = run_local(
            _project(project_file, failing.url),
            ["demo-users"],
            sender_timeout_s=5.5,
            driver_options={"retry_delay_s": 0},  # each failed record is received again at once
        )
        delivered_once = read_captured(failing.out_path)

    # Then the run is not committed: its chunks ended in the DLQ and state has no row
    assert not broken.ok and broken.runs[0].status == "sending" and broken.dead_letter_messages == 5
    assert len(delivered_once) == 50
    assert _state_rows(small_warehouse, "demo-users") == 0

    # When the next run finds Segment healthy again
    with CaptureServer(tmp_path / "healthy.ndjson") as healthy:
        report = run_local(_project(project_file, healthy.url), ["demo-users"])
        delivered = read_captured(healthy.out_path)

    # Then every user goes out, the already-delivered ones with the same messageIds, and state commits
    assert report.ok and report.runs[0].sent == 300
    assert {m["messageId"] for m in delivered_once} <= {m["messageId"] for m in delivered}
    assert _state_rows(small_warehouse, "demo-users") == 300


def test_rejected_rows_are_kept_out_of_state_and_tried_again(project_file, capture, small_warehouse):
    # Given two users sharing a key and one event without a user
    with duckdb.connect(str(small_warehouse)) as con:
        con.execute("UPDATE users SET user_id = 'user_000002' WHERE user_id = 'user_000001'")
        con.execute("UPDATE events SET user_id = NULL WHERE event_id = 'evt_00000005'")
    project = _project(project_file, capture.url)

    # When both syncs run
    report = run_local(project)

    # Then the bad rows are rejected records in the warehouse, the rest are committed
    users, events = report.runs
    assert (users.rejected, users.committed, events.rejected, events.committed) == (2, 298, 1, 1_999)
    with duckdb.connect(str(small_warehouse), read_only=True) as con:
        rejected = con.execute("SELECT SYNC, ROW_KEY, FIELD FROM SEGSYNC.REJECTED_RECORDS ORDER BY 1, 2").fetchall()
        history = con.execute("SELECT SYNC, STATUS, REJECTED FROM SEGSYNC.SYNC_RUNS ORDER BY 1").fetchall()
    assert rejected == [
        ("demo-events", "evt_00000005", "userId"),
        ("demo-users", "user_000002", "key"),
        ("demo-users", "user_000002", "key"),
    ]
    assert history == [("demo-events", "committed", 1), ("demo-users", "committed", 2)]

    # And once fixed, they go out on the next run (and only they)
    with duckdb.connect(str(small_warehouse)) as con:
        con.execute("UPDATE events SET user_id = 'user_000005' WHERE event_id = 'evt_00000005'")
    again = run_local(project)
    assert [r.sent for r in again.runs] == [0, 1]

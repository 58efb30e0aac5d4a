"""Runs at Segment's pace, end to end on the local pipeline: waves, checkpoints, and a run killed half way.

The paces are small so the runs last seconds: 300 users at 200 events/s, one second of them queued at a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import orjson
import pytest

from segsync.config import load_project
from segsync.local.capture import CaptureServer, read_captured
from segsync.local.run import run_local

from ..conftest import point_at

PACE = 200
PLAN_AHEAD_S = 1
CHUNK_ROWS = 50


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The planner's settings for a paced run, as the stack's parameters would set them."""
    env = {"PLAN_AHEAD_SECONDS": str(PLAN_AHEAD_S), "CHUNK_ROWS": str(CHUNK_ROWS), "SEGMENT_WRITE_KEY": "test-key"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_a_paced_run_goes_out_in_waves_never_queueing_more_than_its_plan_ahead(project_file, capture, paced):
    # Given 300 users toward an endpoint paced at 200 events/s, one second of them queued at a time
    project = load_project(point_at(project_file, capture.url, events_per_second=PACE))

    # When the sync runs, the planner ticking every 0.2 s
    report = run_local(project, ["demo-users"], tick_seconds=0.2)

    # Then it went out in waves, checkpointed as it went, and committed every row once
    [run] = report.runs
    sent = read_captured(capture.out_path)
    assert (run.status, run.sent, run.committed) == ("committed", 300, 300)
    assert run.waves >= 2 and run.checkpoints == run.waves
    assert len({m["messageId"] for m in sent}) == len(sent) == 300

    # And the queue never held more than the plan-ahead of rows (200) plus one chunk
    assert run.peak_queued_rows <= PACE * PLAN_AHEAD_S + CHUNK_ROWS


def test_a_run_killed_half_way_resends_only_what_was_not_checkpointed(tmp_path, project_file, small_warehouse, paced):
    # Given a project over the small warehouse, toward an endpoint paced at 100 events/s (three seconds of users)
    with CaptureServer(tmp_path / "captured.ndjson") as capture:
        project = point_at(project_file, capture.url, events_per_second=100)
        command = [sys.executable, "-m", "segsync.cli", "run", "--local", str(project), "--sync", "demo-users"]
        env = {**os.environ, **paced, "PYTHONPATH": os.pathsep.join(sys.path)}

        # When the run is killed (SIGKILL: no cleanup at all) once half of the users have arrived
        killed = subprocess.Popen([*command, "--tick-seconds", "0.2"], env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while capture.messages < 150 and time.monotonic() < deadline and killed.poll() is None:
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        first = len(read_captured(capture.out_path))
        with duckdb.connect(str(small_warehouse), read_only=True) as con:
            checkpointed = con.execute("SELECT COUNT(*) FROM SEGSYNC.SYNC_STATE").fetchone()[0]

        # And the sync runs again
        done = subprocess.run([*command, "--json"], env=env, capture_output=True, check=False, timeout=120)

    # Then the first run had checkpointed what it delivered, and the next sent only the rest
    [run] = orjson.loads(done.stdout)["runs"]
    assert 150 <= first < 300 and checkpointed >= 100
    assert (run["status"], run["new"], run["sent"]) == ("committed", 300 - checkpointed, 300 - checkpointed)
    received = read_captured(capture.out_path)
    assert {m["userId"] for m in received} == {f"user_{i:06d}" for i in range(1, 301)}
    assert len(received) - 300 <= first - checkpointed  # the resent: delivered, not yet checkpointed when killed

"""Run lifecycle under moto on a real DuckDB file: one run at a time, commit after delivery, stale runs abandoned."""

from __future__ import annotations

import os

import pytest

from segsync.config import DuckDBConnection
from segsync.lifecycle import RunLifecycle
from segsync.planner import Planner
from segsync.queue import ChunkQueue
from segsync.state import WarehouseState
from segsync.store import ChunkTally, RunStore
from segsync.warehouse.duckdb import DuckDBWarehouse

LOCK_SECONDS = 600


class Clock:
    """A wall clock the test moves forward (lock expiry is measured against it)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def parts(stack, pushed_project, small_warehouse, clock):
    """The planner's collaborators as the handler wires them, with a movable clock."""
    runs = RunStore(stack.table(os.environ["RUNS_TABLE"]), clock=clock)
    planner = Planner(runs, ChunkQueue(stack.client("sqs"), stack.queue_url))
    lifecycle = RunLifecycle(runs, planner, LOCK_SECONDS, clock=clock)
    warehouse = DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(small_warehouse)))
    yield runs, lifecycle, warehouse, WarehouseState(warehouse, "SEGSYNC")
    warehouse.close()


def _deliver_all(stack, runs: RunStore, sync: str) -> int:
    """Play a sender that delivers every queued chunk (counting each once)."""
    from segsync.chunks import decode

    sqs = stack.client("sqs")
    delivered = 0
    while messages := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            chunk = decode(message["Body"])
            tally = ChunkTally(
                rows=len(chunk.rows), sent=len(chunk.rows), rejected=0, batches=1, bytes_sent=1, retries=0
            )
            runs.record_chunk(sync, chunk.run_id, chunk.number, tally)
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
            delivered += len(chunk.rows)
    return delivered


def _state_rows(state: WarehouseState, sync: str) -> int:
    rows = state.warehouse.query(f"SELECT COUNT(*) FROM {state.state_table} WHERE SYNC = '{sync}'")
    return rows[0][0]


def test_a_second_run_waits_while_the_first_is_in_flight(parts, pushed_project):
    # Given a run whose chunks are still queued
    _, lifecycle, warehouse, state = parts
    sync, destination = pushed_project.sync("demo-users"), pushed_project.connections["segment"]
    first = lifecycle.start(sync, destination, warehouse, state, trigger="test")

    # When the schedule ticks again
    second = lifecycle.start(sync, destination, warehouse, state, trigger="test")

    # Then the second is skipped, naming the run in progress, and nothing new is queued
    assert first.status == "sending" and second.status == "skipped"
    assert first.run_id in second.error


def test_finalize_commits_only_after_every_chunk_is_delivered(stack, parts, pushed_project):
    # Given a planned run
    runs, lifecycle, warehouse, state = parts
    sync, destination = pushed_project.sync("demo-users"), pushed_project.connections["segment"]
    run = lifecycle.start(sync, destination, warehouse, state, trigger="test")

    # When finalize comes before delivery, Then nothing is committed
    assert lifecycle.finalize(sync, state) is None
    assert _state_rows(state, "demo-users") == 0

    # When every chunk is delivered and finalize comes again
    assert _deliver_all(stack, runs, "demo-users") == 300
    committed = lifecycle.finalize(sync, state)

    # Then state holds every row, the run is committed and the lock is free
    assert committed["status"] == "committed" and committed["committed"] == 300
    assert _state_rows(state, "demo-users") == 300
    assert runs.lock("demo-users") is None
    assert state.history("demo-users")[0]["run_id"] == run.run_id


def test_a_planner_that_died_after_enqueueing_commits_nothing_and_is_abandoned_when_stale(
    stack, parts, pushed_project, clock, monkeypatch
):
    # Given a planner that queued its chunks, then died before closing the plan
    runs, lifecycle, warehouse, state = parts
    sync, destination = pushed_project.sync("demo-users"), pushed_project.connections["segment"]

    def die(*args, **kwargs):
        raise RuntimeError("Lambda timed out")

    with monkeypatch.context() as patch:
        patch.setattr(RunStore, "planned", die)
        with pytest.raises(RuntimeError):
            lifecycle.start(sync, destination, warehouse, state, trigger="test")
    crashed = runs.lock("demo-users")["run_id"]

    # When its chunks are delivered anyway and finalize runs, Then nothing commits (the plan never closed)
    _deliver_all(stack, runs, "demo-users")
    assert lifecycle.finalize(sync, state) is None
    assert _state_rows(state, "demo-users") == 0

    # When the next tick comes after the lock expired
    clock.now += LOCK_SECONDS + 1
    retry = lifecycle.start(sync, destination, warehouse, state, trigger="test")

    # Then the stale run is abandoned (with history) and a new run plans every row again
    assert runs.run("demo-users", crashed)["status"] == "abandoned"
    assert [h["status"] for h in state.history("demo-users")] == ["abandoned"]
    assert retry.status == "sending" and retry.diff.new == 300


def test_finalize_that_died_midway_can_run_again_to_the_same_state(stack, parts, pushed_project, monkeypatch):
    # Given a delivered run whose first finalize died after the MERGE
    runs, lifecycle, warehouse, state = parts
    sync, destination = pushed_project.sync("demo-users"), pushed_project.connections["segment"]
    lifecycle.start(sync, destination, warehouse, state, trigger="test")
    _deliver_all(stack, runs, "demo-users")
    with monkeypatch.context() as patch:
        patch.setattr(WarehouseState, "record_history", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("died")))
        with pytest.raises(RuntimeError):
            lifecycle.finalize(sync, state)

    # When finalize runs again
    run = lifecycle.finalize(sync, state)

    # Then state holds each row once and the run is committed with one history row
    assert run["status"] == "committed"
    assert _state_rows(state, "demo-users") == 300
    assert len(state.history("demo-users")) == 1


def test_rejected_rows_of_a_delivered_run_stay_out_of_state(stack, parts, pushed_project, small_warehouse):
    # Given a duplicated key in the model
    runs, lifecycle, warehouse, state = parts
    warehouse.execute("UPDATE users SET user_id = 'user_000002' WHERE user_id = 'user_000001'")
    sync, destination = pushed_project.sync("demo-users"), pushed_project.connections["segment"]

    # When the run is delivered and finalized
    lifecycle.start(sync, destination, warehouse, state, trigger="test")
    _deliver_all(stack, runs, "demo-users")
    lifecycle.finalize(sync, state)

    # Then both duplicates are rejected records in the warehouse, and only the 298 others are in state
    assert _state_rows(state, "demo-users") == 298
    assert {r["row_key"] for r in state.rejected("demo-users")} == {"user_000002"}

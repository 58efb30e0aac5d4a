"""Runs over time under moto on a real DuckDB file: leases held by progress, waves, checkpoints, fencing, races.

The demo's 300 users go out in waves of 100 rows (chunks of 50) at a pace of 1,000 events/s with 0.1 s of
plan-ahead; the clock that decides lock expiry is the test's.
"""

from __future__ import annotations

import os
import re
import tracemalloc

import duckdb
import pytest
from botocore.exceptions import EndpointConnectionError

from segsync import planner as planner_module
from segsync.chunks import decode
from segsync.config import DuckDBConnection
from segsync.lifecycle import RunLifecycle
from segsync.planner import PlanLimits, Planner
from segsync.queue import ChunkQueue
from segsync.release import ReleaseSchedule
from segsync.state import REJECTION_DETAIL_LIMIT, WarehouseState, destination_id
from segsync.store import ChunkTally, Rejection, RunStore
from segsync.warehouse.duckdb import DuckDBWarehouse

LOCK_SECONDS = 600
LIMITS = PlanLimits(chunk_rows=50, plan_ahead_s=0.1)


class Clock:
    """A wall clock the test moves forward (lock expiry is measured against it)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Parts:
    """The planner's collaborators as the handler wires them, with a movable clock."""

    def __init__(self, stack, project, warehouse_path, clock: Clock) -> None:
        self.stack = stack
        self.runs = RunStore(stack.table(os.environ["RUNS_TABLE"]), clock=clock)
        self.queue = ChunkQueue(stack.client("sqs"), stack.queue_url)
        self.planner = Planner(self.runs, self.queue, LIMITS, schedule=ReleaseSchedule(self.runs.table, clock))
        self.lifecycle = self.planner_invocation()
        self.warehouse = DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(warehouse_path)))
        self.state = WarehouseState(self.warehouse, "SEGSYNC")
        self.sync = project.sync("demo-users")
        self.destination = project.connections["segment"].model_copy(update={"events_per_second": 1_000})
        self.clock = clock
        self.sent_keys: list[str] = []

    def planner_invocation(self) -> RunLifecycle:
        """Another planner invocation (its own worker id), sharing the tables and the clock."""
        return RunLifecycle(self.runs, self.planner, LOCK_SECONDS, clock=self.runs._clock)

    def start(self, lifecycle: RunLifecycle | None = None):
        result = (lifecycle or self.lifecycle).start(self.sync, self.destination, self.state, trigger="test")
        if result.status == "sending":
            self.run_id = result.run_id
        return result

    def tick(self, lifecycle: RunLifecycle | None = None) -> dict:
        """The schedule's tick for the sync's live run (the last run as it ended, if none is live)."""
        lock = self.runs.lock("demo-users")
        if lock is None:
            return self.runs.run("demo-users", self.run_id)
        return (lifecycle or self.lifecycle).advance(self.sync, self.destination, self.state, lock["run_id"])

    def deliver(self, chunks: int | None = None, reject: str | None = None) -> int:
        """Play a sender counting up to ``chunks`` queued chunks (all by default); rows delivered.

        The clock moves on by the time those rows take at the pace, as the release schedule spaces them.
        """
        sqs = self.stack.client("sqs")
        delivered = taken = 0
        while chunks is None or taken < chunks:
            messages = sqs.receive_message(QueueUrl=self.stack.queue_url, MaxNumberOfMessages=1).get("Messages")
            if not messages:
                break
            chunk = decode(messages[0]["Body"])
            rejected = [Rejection(row[0], "userId", "test") for row in chunk.rows if row[0] == reject]
            if rejected:
                self.runs.put_rejections("demo-users", chunk.run_id, chunk.number, rejected)
            self.sent_keys.extend(row[0] for row in chunk.rows)
            tally = ChunkTally(len(chunk.rows), len(chunk.rows) - len(rejected), len(rejected), 1, 1, 0)
            self.runs.record_chunk(chunk.run_id, chunk.number, tally)
            sqs.delete_message(QueueUrl=self.stack.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
            delivered += len(chunk.rows)
            taken += 1
        self.clock.now += delivered / self.destination.events_per_second
        return delivered

    def state_rows(self) -> int:
        return self.warehouse.query(f"SELECT COUNT(*) FROM {self.state.state_table} WHERE SYNC = 'demo-users'")[0][0]

    def run_tables(self) -> list[str]:
        rows = self.warehouse.query(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'RUN\\_DEMO%' ESCAPE '\\'"
        )
        return sorted(row[0] for row in rows)


@pytest.fixture
def parts(stack, pushed_project, small_warehouse, clock):
    made = Parts(stack, pushed_project, small_warehouse, clock)
    yield made
    made.warehouse.close()


def test_a_run_goes_out_in_waves_and_commits_each_wave_as_it_is_delivered(parts):
    # Given a run of 300 rows, 100 of them (0.1 s at 1,000 events/s) queued at a time
    run = parts.start()
    assert (run.status, run.chunks) == ("sending", 2)

    # When the first wave is delivered and the schedule ticks, three times over
    committed = []
    for _ in range(3):
        assert parts.deliver() == 100
        item = parts.tick()
        committed.append(parts.state_rows())

    # Then each tick checkpointed the wave delivered since the last, queued the next, and the last one committed
    assert committed == [100, 200, 300]
    assert (item["status"], item["waves"], item["checkpoints"], item["committed"]) == ("committed", 3, 3, 300)
    assert item["peak_queued_rows"] == 100
    assert parts.runs.lock("demo-users") is None and parts.run_tables() == []


def test_waves_read_the_run_table_a_span_at_a_time_each_row_once_in_order(parts, monkeypatch):
    # Given waves read 7 rows of the run table per query (so a wave of 100 rows takes many spans)
    monkeypatch.setattr(planner_module, "WAVE_SPAN", 7)
    spans = []
    real = WarehouseState.wave_sql

    def wave_sql(self, sync, run_id, after_seq, rows, through_seq=None):
        spans.append((after_seq, through_seq))
        return real(self, sync, run_id, after_seq, rows, through_seq)

    monkeypatch.setattr(WarehouseState, "wave_sql", wave_sql)

    # When a first run goes out, wave by wave
    parts.start()
    item = {}
    while item.get("status") != "committed":
        parts.deliver()
        item = parts.tick()

    # Then every user went out once, in order, and no query spanned more than 7 rows of the run table
    assert parts.sent_keys == [f"user_{i:06d}" for i in range(1, 301)] and item["waves"] == 3
    assert all(through - after <= 7 for after, through in spans if through is not None)

    # When every 13th user changes, and the next run goes out (its changed rows far apart in the run table)
    parts.warehouse.execute("UPDATE users SET plan = plan || '+' WHERE CAST(substr(user_id, 6) AS INTEGER) % 13 = 0")
    parts.sent_keys.clear()
    parts.start()
    item = {}
    while item.get("status") != "committed":
        parts.deliver()
        item = parts.tick()

    # Then exactly the changed users went out, once each, in order, in a single wave
    assert parts.sent_keys == [f"user_{i:06d}" for i in range(13, 301, 13)]
    assert (item["waves"], item["committed"]) == (1, 23)


def test_a_run_longer_than_its_lock_keeps_it_while_it_makes_progress(parts, clock):
    # Given a run whose waves take, each, most of the lock window to deliver
    run = parts.start()

    # When every tick comes LOCK_SECONDS - 1 after the last, each after a wave was delivered
    for _ in range(3):
        clock.now += LOCK_SECONDS - 1
        parts.deliver()
        item = parts.tick()

    # Then the lock was renewed by each wave's progress, and the run committed, never abandoned
    assert item["status"] == "committed" and item["run_id"] == run.run_id
    assert [h["status"] for h in parts.state.history("demo-users")] == ["committed"]


def test_a_run_without_progress_for_the_lock_window_is_abandoned_keeping_what_it_checkpointed(parts, clock):
    # Given a run that checkpointed its first wave, then stopped making progress (its senders died)
    stale = parts.start()
    parts.deliver()
    parts.tick()
    assert parts.state_rows() == 100

    # When the lock window passes without a delivery, and the next run starts
    clock.now += LOCK_SECONDS + 1
    parts.tick()
    retry = parts.start()

    # Then the stale run is abandoned (history says so), its checkpoint stays, and the new run sends the rest only
    assert parts.runs.run("demo-users", stale.run_id)["status"] == "abandoned"
    assert {h["run_id"]: h["status"] for h in parts.state.history("demo-users")}[stale.run_id] == "abandoned"
    assert (retry.status, retry.diff.new, retry.diff.unchanged) == ("sending", 200, 100)

    # And its chunks still queued are now stale: a sender drops them (their run lost the lock)
    assert parts.runs.lock("demo-users")["run_id"] == retry.run_id
    assert parts.run_tables() == [parts.state.run_table("demo-users", retry.run_id).split(".")[1]]


@pytest.mark.parametrize("first", ["a", "b"])
def test_two_planners_starting_one_sync_at_once_make_one_run(parts, first):
    # Given two planner invocations for one sync; a has begun (lock and run item, one transaction) but not
    # yet planned when b looks, or a has planned already
    a, b = parts.planner_invocation(), parts.planner_invocation()
    if first == "a":
        planned = parts.start(a)
        run_id = planned.run_id
    else:
        run_id = "20260101T000000Z-aaaaaa"
        destination = destination_id(parts.destination)
        assert parts.runs.begin("demo-users", run_id, LOCK_SECONDS, trigger="test", destination=destination) is None

    # When b starts the sync
    other = parts.start(b)

    # Then b is skipped naming a's run, and a's lock, run and table are untouched
    assert other.status == "skipped" and run_id in (other.error or "")
    assert parts.runs.lock("demo-users")["run_id"] == run_id
    assert parts.runs.run("demo-users", run_id)["status"] in ("planning", "sending")
    if first == "b":
        parts.planner.plan(parts.sync, parts.destination, parts.state, run_id=run_id)
        parts.run_id = run_id

    # And a's run goes on to commit every row, alone
    for _ in range(4):
        parts.deliver()
        item = parts.tick()
    assert item["status"] == "committed" and parts.state_rows() == 300 and parts.run_tables() == []


def test_two_ticks_of_one_run_at_once_do_its_work_once(parts):
    # Given a delivered wave, and one planner invocation in the middle of moving the run along
    parts.start()
    parts.deliver()
    run_id = parts.runs.lock("demo-users")["run_id"]
    assert parts.runs.claim_work("demo-users", run_id, "the-other-invocation", 60)

    # When a second invocation ticks the same run
    item = parts.tick(parts.planner_invocation())

    # Then it leaves the run to the first: nothing checkpointed, nothing queued twice
    assert (item["checkpoints"], item["waves"]) == (0, 1) and parts.state_rows() == 0

    # And once the first is done, ticks go on as usual
    parts.runs.release_work("demo-users", run_id, "the-other-invocation")
    assert parts.tick()["checkpoints"] == 1 and parts.state_rows() == 100


def test_rejected_rows_never_commit_whatever_the_ticks(parts):
    # Given a sender that rejects user_000002
    parts.start()

    # When every wave is delivered and ticked, each tick running twice
    item = {}
    while item.get("status") != "committed":
        parts.deliver(reject="user_000002")
        parts.tick()
        item = parts.tick()

    # Then user_000002 is a rejected record in the warehouse, and the 299 others are in state
    assert parts.state_rows() == 299 and item["committed"] == 299
    assert [(r["row_key"], r["field"]) for r in parts.state.rejected("demo-users")] == [("user_000002", "userId")]
    assert item["rejection_reasons"] == {"userId: test": 1}


def test_a_run_that_lost_its_lock_mid_checkpoint_changes_nothing(parts, clock, monkeypatch):
    # Given a delivered wave, and another run taking the sync over while this tick checkpoints it
    stale = parts.start()
    parts.deliver()
    real = WarehouseState.checkpoint
    newer = "20990101T000000Z-bbbbbb"

    def taken_over(self, *args, **kwargs):
        clock.now += LOCK_SECONDS + 1
        assert parts.runs.begin("demo-users", newer, LOCK_SECONDS, trigger="test", replacing=stale.run_id) is None
        self.fence("demo-users", newer)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(WarehouseState, "checkpoint", taken_over)

    # When the tick goes on
    item = parts.tick()

    # Then its merge was fenced off in the warehouse and its run item was not updated: nothing committed
    assert parts.state_rows() == 0
    assert (item["status"], item["checkpoints"], item["committed"]) == ("sending", 0, 0)
    assert parts.runs.lock("demo-users")["run_id"] == newer


def test_a_botocore_error_mid_plan_fails_the_run_at_once_with_its_reason(parts, monkeypatch):
    # Given SQS unreachable while the first wave is queued
    def unreachable(*args, **kwargs):
        raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")

    monkeypatch.setattr(ChunkQueue, "send_all", unreachable)

    # When the run starts
    result = parts.start()

    # Then it failed at once with the error's type and message, everywhere, and the lock is free
    assert result.status == "failed" and "EndpointConnectionError: Could not connect" in result.error
    assert parts.runs.run("demo-users", result.run_id)["error"] == result.error
    assert parts.state.history("demo-users")[0]["error"] == result.error
    assert parts.runs.lock("demo-users") is None and parts.run_tables() == []


def test_an_unexpected_error_in_a_tick_fails_the_run_and_releases_the_lock(parts, monkeypatch):
    # Given a planned run, and a bug that makes the checkpoint raise
    run = parts.start()
    parts.deliver()
    monkeypatch.setattr(WarehouseState, "checkpoint", lambda *a, **k: 1 / 0)

    # When the tick comes
    item = parts.tick()

    # Then the run failed with the error named, and a new run may start
    assert item["status"] == "failed" and "ZeroDivisionError: division by zero" in item["error"]
    assert parts.runs.lock("demo-users") is None
    assert parts.start().run_id != run.run_id


def test_a_million_null_keys_are_counted_exactly_in_bounded_memory(stack, pushed_project, tmp_path, clock):
    # Given a model of 1,000,000 users whose key is NULL
    path = tmp_path / "nulls.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE users AS SELECT CAST(NULL AS VARCHAR) AS user_id, 'a@example.com' AS email, "
            "'n' AS name, 'free' AS plan, TIMESTAMP '2024-01-01' AS created_at, 1.5::DECIMAL(12,2) AS lifetime_value,"
            " true AS is_active, 'US' AS country FROM range(1000000)"
        )
    parts = Parts(stack, pushed_project, path, clock)

    # When the run plans them
    tracemalloc.start()
    run = parts.start()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Then every row is rejected and counted, a bounded number recorded one by one, in little Python memory
    item = parts.runs.run("demo-users", run.run_id)
    assert (item["status"], item["rejected_planner"], item["committed"]) == ("committed", 1_000_000, 0)
    assert item["warning"] == "100% of the model's 1,000,000 rows cannot be synced: 1,000,000 have a NULL key 'user_id'"
    assert item["rejection_reasons"] == {"key: key column … is null": 1_000_000}
    assert len(parts.state.rejected("demo-users", limit=10 * REJECTION_DETAIL_LIMIT)) == REJECTION_DETAIL_LIMIT
    assert peak < 20 * 2**20
    parts.warehouse.close()


def test_the_bookkeeping_schema_must_be_a_plain_identifier(parts):
    # Given a state_schema that would nest or inject, When state is opened on it, Then it is refused by name
    from segsync.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape("state_schema 'ANALYTICS.SEGSYNC' is not a plain identifier")):
        WarehouseState(parts.warehouse, "ANALYTICS.SEGSYNC")

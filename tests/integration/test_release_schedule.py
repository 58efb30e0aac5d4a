"""Runs toward one destination share its pace: their waves take turns on its release schedule (moto, DuckDB).

Two syncs of the small demo (2,000 events, 300 users) toward one destination paced at 100 events/s, two
seconds of it planned ahead, chunks of 100 rows. The clock is the test's: ticks come every two seconds, and
a sender delivers each chunk once its release time has come, without waiting for it.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from segsync.chunks import decode
from segsync.config import DuckDBConnection
from segsync.lifecycle import RunLifecycle
from segsync.planner import PlanLimits, Planner
from segsync.queue import ChunkQueue
from segsync.release import ReleaseSchedule
from segsync.state import WarehouseState
from segsync.store import ChunkTally, RunStore
from segsync.warehouse.duckdb import DuckDBWarehouse

PACE = 100
LOCK_SECONDS = 3
TICK_S = 2


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def warehouse(small_warehouse):
    opened = DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(small_warehouse)))
    yield opened
    opened.close()


def test_runs_toward_one_destination_take_turns_never_releasing_more_than_its_pace(
    stack, pushed_project, warehouse, monkeypatch
):
    # Given a planner that notes when each chunk it queues is released (now + its DelaySeconds)
    clock = Clock()
    released: list[tuple[float, str, int, int]] = []
    send_all = ChunkQueue.send_all

    def noting(self, bodies):
        def each():
            for number, body, delay in bodies:
                released.append((clock.now + delay, decode(body).run_id, number, len(decode(body).rows)))
                yield number, body, delay

        return send_all(self, each())

    monkeypatch.setattr(ChunkQueue, "send_all", noting)
    runs = RunStore(stack.table(os.environ["RUNS_TABLE"]), clock=clock)
    limits = PlanLimits(chunk_rows=100, plan_ahead_s=TICK_S)
    planner = Planner(
        runs, ChunkQueue(stack.client("sqs"), stack.queue_url), limits, schedule=ReleaseSchedule(runs.table, clock)
    )
    lifecycle = RunLifecycle(runs, planner, LOCK_SECONDS, clock=clock)
    state = WarehouseState(warehouse, "SEGSYNC")
    destination = pushed_project.connections["segment"].model_copy(update={"events_per_second": PACE})
    events, users = pushed_project.sync("demo-events"), pushed_project.sync("demo-users")

    # When both syncs start at the same moment, then tick every two seconds (events first, as a tick may
    # happen to reach it first every time), a sender delivering every chunk whose release time has come
    started = {sync.name: lifecycle.start(sync, destination, state, trigger="test") for sync in (events, users)}
    assert started["demo-users"].chunks == 0  # the schedule's two seconds are the events run's
    delivered: set[tuple[str, int]] = set()
    items: dict[str, dict] = {}
    for _ in range(20):
        clock.now += TICK_S
        for at, run_id, number, rows in released:
            if at <= clock.now and (run_id, number) not in delivered:
                runs.record_chunk(run_id, number, ChunkTally(rows, rows, 0, 1, 1, 0))
                delivered.add((run_id, number))
        items = {
            sync.name: lifecycle.advance(sync, destination, state, started[sync.name].run_id)
            for sync in (events, users)
        }
        if all(item["status"] == "committed" for item in items.values()):
            break

    # Then both runs committed every row, the users run never abandoned while it waited its turn (its lock
    # is shorter than the events run)
    assert {name: (item["status"], item["committed"]) for name, item in items.items()} == {
        "demo-events": ("committed", 2_000),
        "demo-users": ("committed", 300),
    }

    # And the users run went out after the events run, and no second ever saw more than the pace released
    by_run = {run.run_id: [at for at, run_id, _, _ in released if run_id == run.run_id] for run in started.values()}
    assert min(by_run[started["demo-users"].run_id]) >= max(by_run[started["demo-events"].run_id])
    per_second = Counter()
    for at, _, _, rows in released:
        per_second[int(at - 1_800_000_000)] += rows
    assert max(per_second.values()) <= PACE
    assert sum(per_second.values()) == 2_300


def test_two_planners_reserving_at_the_same_moment_get_one_stretch_after_the_other(stack):
    # Given two planners' schedules on one runs table, the second reserving between the first's read and write
    clock = Clock()
    table = stack.table(os.environ["RUNS_TABLE"])
    first, second = ReleaseSchedule(table, clock), ReleaseSchedule(table, clock)
    write = first._write
    raced: list = []

    def racing(key, until, seen):
        if not raced:
            raced.append(second.reserve("a destination", 60, 300))
        return write(key, until, seen)

    first._write = racing

    # When the first reserves 60 s of the destination's pace
    slot = first.reserve("a destination", 60, 300)

    # Then the second got the first 60 s, and the first, its write refused, the next 60 s
    assert (raced[0].after_s, raced[0].seconds) == (0, 60)
    assert (slot.after_s, slot.seconds) == (60, 60)

    # And a wave that fills only 10 s of its stretch gives the rest back, for the next wave to start there
    first.give_back("a destination", slot, 10)
    assert first.reserve("a destination", 60, 300).after_s == 70

"""Scenarios 3 and 4, and the paced run: the whole local pipeline (``segsync.local.run.run_local``) on a DuckDB model.

``python -m bench.pipeline full WAREHOUSE ENDPOINT RESULT``: a first run (every row is new).
``python -m bench.pipeline incremental WAREHOUSE ENDPOINT RESULT``: change 1% of the users in the
warehouse (``CHANGE_SQL``), then run again: only the changed rows should be sent.
``python -m bench.pipeline paced WAREHOUSE ENDPOINT RESULT --events-per-second 1000 --tick-seconds 60``:
a first run at Segment's pace, ticking as the stack's schedule does; every sender invocation's billed
duration and the time it spent asleep (pacing, backoff) are measured, so its cost is too.

This is local mode end to end: moto runs inside this process (``local_stack``), as ``segsync demo``
runs it; the capture endpoint runs in another process (``bench.services``). Where the time goes is
read from the run summary and from timers the bench wraps around the handlers, the warehouse adapter,
``SegmentClient.send`` and every boto3 call (botocore hooks); nothing in the library is changed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    CHANGE_SQL,
    PLAN_AHEAD_DEFAULT_S,
    UNPACED,
    AwsCalls,
    Timers,
    diff_counts,
    memory,
    project,
    write_result,
)


class Sleeps:
    """Time spent asleep inside the sender: its limiter holding it to the pace, its client's backoff.

    ``RateLimiter`` and ``SegmentClient`` take ``sleep`` as an argument (``time.sleep`` by default);
    every one built while this is installed gets a timed sleep instead, so waiting is measured where it
    happens rather than inferred.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    def sleep(self, seconds: float) -> None:
        started = time.perf_counter()
        try:
            time.sleep(seconds)
        finally:
            self.seconds += time.perf_counter() - started

    def install(self) -> None:
        from segsync.segment import SegmentClient
        from segsync.sender import RateLimiter

        for cls in (RateLimiter, SegmentClient):
            build = cls.__init__

            def timed_init(instance: Any, *args: Any, _build: Any = build, **kwargs: Any) -> None:
                kwargs.setdefault("sleep", self.sleep)
                _build(instance, *args, **kwargs)

            cls.__init__ = timed_init  # type: ignore[method-assign]


class TimedHandlers:
    """Wraps the handlers ``run_local`` loads: wall and CPU seconds, and AWS calls, per function.

    Each invocation's wall time is what Lambda would bill (rounded up to the millisecond), less the
    bench's own item-size reads (``bench.capacity``); the time its sender slept is counted apart.
    """

    def __init__(self, aws: AwsCalls, timers: Timers, sleeps: Sleeps) -> None:
        self.aws = aws
        self.timers = timers
        self.sleeps = sleeps
        self.timers_by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.billed_ms: defaultdict[str, int] = defaultdict(int)
        self.slept: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.invocations: defaultdict[str, int] = defaultdict(int)
        self.records: defaultdict[str, int] = defaultdict(int)
        self.aws_by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.responses: list[dict[str, Any]] = []

    def install(self) -> None:
        import segsync.local.run as run_module

        load = run_module.load_handler

        def load_timed(function: str) -> Any:
            return self.wrap(function, load(function))

        run_module.load_handler = load_timed

    def wrap(self, function: str, handler: Any) -> Any:
        def timed(event: dict[str, Any], context: Any) -> Any:
            phase = function if function == "sender" else f"{function}.{event.get('action', 'run')}"
            before, timed_before = self.aws.snapshot(), self.timers.snapshot()
            side, slept = self.aws.capacity.side_seconds, self.sleeps.seconds
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                response = handler(event, context)
            finally:
                took = time.perf_counter() - wall - (self.aws.capacity.side_seconds - side)
                self.wall[phase] += took
                self.billed_ms[phase] += math.ceil(took * 1000)
                self.slept[phase] += self.sleeps.seconds - slept
                self.cpu[phase] += time.process_time() - cpu
                self.invocations[phase] += 1
                self.records[phase] += len(event.get("Records", ()))
                self.aws_by_phase[phase].append(diff_counts(self.aws.snapshot(), before))
                self.timers_by_phase[phase].append(diff_counts(self.timers.snapshot(), timed_before))
            if function == "planner":
                self.responses.append(response)
            return response

        return timed

    def report(self) -> dict[str, Any]:
        return {
            phase: {
                "wall_s": round(self.wall[phase], 3),
                "billed_s": self.billed_ms[phase] / 1000,
                "slept_s": round(self.slept[phase], 3),
                "cpu_s": round(self.cpu[phase], 3),
                "invocations": self.invocations[phase],
                "records": self.records[phase],
                "aws": _sum_counts(self.aws_by_phase[phase]),
                "timers": _sum_counts(self.timers_by_phase[phase]),
            }
            for phase in sorted(self.wall)
        }


def _sum_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                total[key] = _sum_counts([total.get(key, {}), value])
            else:
                total[key] = round(total.get(key, 0) + value, 3)
    return total


def change_users(warehouse: Path) -> int:
    """Apply ``CHANGE_SQL`` to 1% of the users; returns how many rows it changed."""
    import duckdb

    with duckdb.connect(str(warehouse)) as con:
        (changed,) = con.execute(CHANGE_SQL).fetchone()
    return int(changed)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("full", "incremental", "paced"))
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("result", type=Path)
    parser.add_argument("--events-per-second", type=int, default=UNPACED, help="the destination's pace")
    parser.add_argument("--tick-seconds", type=float, default=None, help="how often the planner ticks")
    parser.add_argument("--plan-ahead-seconds", type=int, default=None, help="PLAN_AHEAD_SECONDS for the planner")
    args = parser.parse_args()
    if args.plan_ahead_seconds:
        os.environ["PLAN_AHEAD_SECONDS"] = str(args.plan_ahead_seconds)

    changed = change_users(args.warehouse) if args.mode == "incremental" else None
    aws = AwsCalls().install()
    from segsync.local.run import run_local
    from segsync.segment import SegmentClient
    from segsync.warehouse.duckdb import DuckDBWarehouse

    timers = Timers()
    sleeps = Sleeps()
    sleeps.install()
    handlers = TimedHandlers(aws, timers, sleeps)
    handlers.install()
    timers.wrap_public(DuckDBWarehouse, "warehouse")
    timers.wrap(SegmentClient, "send", "segment_send")

    bench = project(args.warehouse, args.endpoint, args.events_per_second)
    ticks = {"tick_seconds": args.tick_seconds} if args.tick_seconds else {}
    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    report = run_local(bench, **ticks)
    wall = time.perf_counter() - wall_started
    cpu = time.process_time() - cpu_started
    summary = report.as_dict() if hasattr(report, "as_dict") else asdict(report) if is_dataclass(report) else {}
    runs = summary.get("runs", [])
    write_result(
        args.result,
        {
            "mode": args.mode,
            "events_per_second": args.events_per_second,
            "tick_seconds": args.tick_seconds,
            "plan_ahead_s": int(os.environ.get("PLAN_AHEAD_SECONDS", PLAN_AHEAD_DEFAULT_S)),
            "changed": changed,
            "report": summary,
            "sent": sum(r.get("sent", 0) for r in runs),
            "rows_read": sum(r.get("rows_read", 0) for r in runs),
            "rejected": sum(r.get("rejected", 0) for r in runs),
            "status": [r.get("status") for r in runs],
            "planner_responses": handlers.responses,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            **memory(),
            "phases": handlers.report(),
            "timers": timers.snapshot(),
            "timers_missing": timers.missing,
            "aws": aws.snapshot(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scenarios 3 and 4: the whole local pipeline (``segsync.local.run.run_local``) on a DuckDB model.

``python -m bench.pipeline full WAREHOUSE ENDPOINT RESULT``: a first run (every row is new).
``python -m bench.pipeline incremental WAREHOUSE ENDPOINT RESULT``: change 1% of the users in the
warehouse (``CHANGE_SQL``), then run again: only the changed rows should be sent.

This is local mode end to end: moto runs inside this process (``local_stack``), as ``segsync demo``
runs it; the capture endpoint runs in another process (``bench.services``). Where the time goes is
read from the run summary and from timers the bench wraps around the handlers, the warehouse adapter,
``SegmentClient.send`` and every boto3 call (botocore hooks); nothing in the library is changed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from bench.common import CHANGE_SQL, AwsCalls, Timers, diff_counts, memory, project, write_result


class TimedHandlers:
    """Wraps the handlers ``run_local`` loads: wall and CPU seconds, and AWS calls, per function."""

    def __init__(self, aws: AwsCalls, timers: Timers) -> None:
        self.aws = aws
        self.timers = timers
        self.timers_by_phase: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.invocations: defaultdict[str, int] = defaultdict(int)
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
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                response = handler(event, context)
            finally:
                self.wall[phase] += time.perf_counter() - wall
                self.cpu[phase] += time.process_time() - cpu
                self.invocations[phase] += 1
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
                "cpu_s": round(self.cpu[phase], 3),
                "invocations": self.invocations[phase],
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
    parser.add_argument("mode", choices=("full", "incremental"))
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("result", type=Path)
    args = parser.parse_args()

    changed = change_users(args.warehouse) if args.mode == "incremental" else None
    aws = AwsCalls().install()
    from segsync.local.run import run_local
    from segsync.segment import SegmentClient
    from segsync.warehouse.duckdb import DuckDBWarehouse

    timers = Timers()
    handlers = TimedHandlers(aws, timers)
    handlers.install()
    timers.wrap_public(DuckDBWarehouse, "warehouse")
    timers.wrap(SegmentClient, "send", "segment_send")

    bench = project(args.warehouse, args.endpoint)
    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    report = run_local(bench)
    wall = time.perf_counter() - wall_started
    cpu = time.process_time() - cpu_started
    summary = report.as_dict() if hasattr(report, "as_dict") else asdict(report) if is_dataclass(report) else {}
    runs = summary.get("runs", [])
    write_result(
        args.result,
        {
            "mode": args.mode,
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

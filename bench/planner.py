"""Scenario 2: the planner handler on a DuckDB model, chunks to SQS on a moto server in another process.

``python -m bench.planner WAREHOUSE MOTO_URL RESULT``

The path is the Lambda's: the syncs table holds the bench sync, ``functions/planner/app.py``'s handler
is invoked with ``{"sync": NAME}``. Only this process is measured: moto (DynamoDB, SQS) runs in
``bench.services``, so the queued chunks do not sit in this process's memory.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import SYNC_NAME, AwsCalls, Timers, diff_counts, memory, project, rss_mb, write_result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("moto")
    parser.add_argument("result", type=Path)
    parser.add_argument(
        "--events-per-second",
        type=int,
        default=None,
        help="the destination's pace: at Segment's 1,000/s the planner queues only its first wave",
    )
    args = parser.parse_args()

    import requests

    aws = AwsCalls().install()
    from segsync.local.driver import PLANNER_TIMEOUT_S, LambdaContext, load_handler
    from segsync.local.stack import SYNCS_TABLE, create_resources
    from segsync.store import SyncStore
    from segsync.warehouse.duckdb import DuckDBWarehouse

    requests.post(f"{args.moto}/moto-api/reset", timeout=30).raise_for_status()
    stack = create_resources(args.moto)
    os.environ.update(stack.env)
    pace = {"events_per_second": args.events_per_second} if args.events_per_second else {}
    SyncStore(stack.table(SYNCS_TABLE)).push(project(args.warehouse, "http://127.0.0.1:9", **pace))
    handler = load_handler("planner")
    timers = Timers()
    timers.wrap_public(DuckDBWarehouse, "warehouse")
    gc.collect()

    before = aws.snapshot()
    baseline_rss = rss_mb()
    wall_started = time.perf_counter()
    cpu_started = time.process_time()
    response = handler({"sync": SYNC_NAME}, LambdaContext("segsync-planner", PLANNER_TIMEOUT_S))
    cpu = time.process_time() - cpu_started
    wall = time.perf_counter() - wall_started
    calls = diff_counts(aws.snapshot(), before)

    sqs = stack.client("sqs")
    # Chunks released later (DelaySeconds) count too: they are queued, only not visible yet.
    counts = sqs.get_queue_attributes(
        QueueUrl=stack.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    queued = sum(int(count) for count in counts.values())
    run: dict[str, Any] = (response.get("runs") or [{}])[0]
    from segsync.local.stack import RUNS_TABLE
    from segsync.store import RunStore

    item = RunStore(stack.table(RUNS_TABLE)).run(SYNC_NAME, run["run_id"]) if run.get("run_id") else {}
    write_result(
        args.result,
        {
            "run": run,
            "rows_read": run.get("rows_read"),
            "chunks": run.get("chunks"),
            "queued_messages": int(queued),
            "queued_rows": item.get("rows_enqueued"),
            "waves": item.get("waves"),
            "events_per_second": args.events_per_second,
            "status": run.get("status"),
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "baseline_rss_mb": round(baseline_rss, 1),
            **memory(),
            "timers": timers.snapshot(),
            "timers_missing": timers.missing,
            "aws": calls,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

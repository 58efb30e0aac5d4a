"""``segsync runs`` and ``segsync rejected``: a sync's history, read from the warehouse's own record."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from segsync.commands import EXIT_OK, print_json, table
from segsync.config import load_project
from segsync.console import add_verbose, function_logs, log_path
from segsync.state import WarehouseState
from segsync.warehouse import connect
from segsync.warehouse.policy import WarehousePolicy


def register(commands: Any) -> None:
    runs = commands.add_parser("runs", help="list a sync's runs (from SEGSYNC.SYNC_RUNS in the warehouse)")
    runs.add_argument("file", type=Path)
    runs.add_argument("--sync", required=True, metavar="NAME")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    add_verbose(runs)
    runs.set_defaults(command=list_runs)

    rejected = commands.add_parser(
        "rejected", help="list a sync's rejected records (from SEGSYNC.REJECTED_RECORDS in the warehouse)"
    )
    rejected.add_argument("file", type=Path)
    rejected.add_argument("--sync", required=True, metavar="NAME")
    rejected.add_argument("--run", metavar="RUN_ID", help="a run id (default: the latest run with rejections)")
    rejected.add_argument("--limit", type=int, default=100)
    rejected.add_argument("--json", action="store_true", help="machine-readable output")
    add_verbose(rejected)
    rejected.set_defaults(command=list_rejected)


def _state(args: argparse.Namespace) -> tuple[Any, Any]:
    project = load_project(args.file)
    sync = project.sync(args.sync)
    source = project.connections[sync.source]
    WarehousePolicy.for_project(project).check(sync.name, sync.source, source)
    return connect(source), source.state_schema


def list_runs(args: argparse.Namespace) -> int:
    warehouse, schema = _state(args)
    with function_logs(log_path(args.file.parent), verbose=args.verbose), warehouse:
        state = WarehouseState(warehouse, schema)
        state.ensure()
        runs = state.history(args.sync, args.limit)
    if args.json:
        print_json({"sync": args.sync, "runs": runs})
        return EXIT_OK
    header = (
        "run",
        "status",
        "started",
        "rows",
        "new",
        "changed",
        "unchanged",
        "removed",
        "rejected",
        "sent",
        "committed",
    )
    rows = [
        (r["run_id"], _status(r), _when(r["started_at"]), r["source_rows"], r["new_rows"], r["changed_rows"],
         r["unchanged_rows"], r["removed_rows"] or 0, r["rejected"], r["sent"], r["committed"])
        for r in runs
    ]  # fmt: skip
    print("\n".join(table(header, rows, left=3)))
    for r in runs:
        if r["baseline"]:
            print(f"{r['run_id']}: baseline (--mark-synced): its rows were recorded as delivered, nothing was sent")
        if r["error"]:
            print(f"{r['run_id']}: {r['error']}")
    return EXIT_OK


def list_rejected(args: argparse.Namespace) -> int:
    warehouse, schema = _state(args)
    with function_logs(log_path(args.file.parent), verbose=args.verbose), warehouse:
        state = WarehouseState(warehouse, schema)
        state.ensure()
        records = state.rejected(args.sync, args.run, args.limit)
    if args.json:
        print_json({"sync": args.sync, "rejected": records})
        return EXIT_OK
    if not records:
        print(f"no rejected records for sync '{args.sync}'")
        return EXIT_OK
    header = ("run", "key", "field", "reason")
    print("\n".join(table(header, [(r["run_id"], r["row_key"], r["field"], r["reason"]) for r in records], left=4)))
    return EXIT_OK


def _status(run: dict[str, Any]) -> str:
    """A run's status, and whether it was a baseline: one that sent nothing on purpose."""
    return f"{run['status']} (baseline)" if run["baseline"] else run["status"]


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"

"""``segsync run --local FILE`` and ``segsync demo``: syncs through the real handlers on a local stack."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from segsync.commands import EXIT_OK, EXIT_RUN_FAILED, print_json, table
from segsync.config import Project, SegmentConnection, load_project
from segsync.local import CHECKOUT

DEMO_DIR = CHECKOUT / "demo"
DEMO_PROJECT = DEMO_DIR / "segsync.yml"
DEMO_WRITE_KEY = "segsync-demo-write-key"
CAPTURE_EVENTS_PER_SECOND = 1_000_000
"""The capture endpoint is not Segment: no 1,000 events/s workspace budget to respect."""


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run syncs")
    run.add_argument("file", type=Path)
    run.add_argument(
        "--local", action="store_true", required=True, help="run on a local stack (moto on loopback)"
    )
    run.add_argument(
        "--sync", action="append", dest="syncs", metavar="NAME", help="only this sync (repeatable)"
    )
    run.add_argument("--json", action="store_true", help="machine-readable summary")
    run.set_defaults(command=run_project)

    demo = commands.add_parser("demo", help="build the demo warehouse and run its syncs locally")
    demo.add_argument(
        "--endpoint", help="a Segment-compatible API base instead of the local capture endpoint"
    )
    demo.add_argument(
        "--events-per-second",
        type=int,
        metavar="N",
        help="pace toward --endpoint (default: the project's, 1,000/s as Segment asks)",
    )
    demo.add_argument("--json", action="store_true", help="machine-readable summary")
    demo.add_argument("--out", type=Path, default=DEMO_DIR / "out", help="where captured payloads go")
    demo.set_defaults(command=run_demo)


def run_project(args: argparse.Namespace) -> int:
    from segsync.local.run import run_local

    project = load_project(args.file)
    report = run_local(project, args.syncs)
    return _report(report, args, extra={})


def run_demo(args: argparse.Namespace) -> int:
    from segsync.local.capture import CaptureServer
    from segsync.local.demo import build_warehouse
    from segsync.local.run import run_local

    project = load_project(DEMO_PROJECT)
    warehouse = Path(project.connections["warehouse"].path)
    built = build_warehouse(warehouse)
    if not args.json:
        print(f"demo warehouse: {warehouse} ({'built now' if built else 'reused'})")
    if not os.environ.get("SEGMENT_WRITE_KEY"):
        os.environ["SEGMENT_WRITE_KEY"] = DEMO_WRITE_KEY
    if args.endpoint:
        report = run_local(_with_endpoint(project, args.endpoint, events_per_second=args.events_per_second))
        return _report(report, args, extra={"endpoint": args.endpoint})
    args.out.mkdir(parents=True, exist_ok=True)
    captured = args.out / "captured.ndjson"
    captured.unlink(missing_ok=True)
    with CaptureServer(captured) as capture:
        report = run_local(_with_endpoint(project, capture.url, events_per_second=CAPTURE_EVENTS_PER_SECOND))
        received = capture.messages
    return _report(
        report, args, extra={"endpoint": "local capture", "captured": str(captured), "received": received}
    )


def _with_endpoint(project: Project, endpoint: str, events_per_second: int | None = None) -> Project:
    """The same project with every Segment destination pointed at ``endpoint`` (and paced anew)."""
    pace = {"events_per_second": events_per_second} if events_per_second else {}
    connections = {
        name: SegmentConnection.model_validate({**c.model_dump(), "endpoint": endpoint, **pace})
        if isinstance(c, SegmentConnection)
        else c
        for name, c in project.connections.items()
    }
    return project.model_copy(update={"connections": connections})


def _report(report: Any, args: argparse.Namespace, extra: dict[str, Any]) -> int:
    if args.json:
        print_json({**report.as_dict(), **extra})
    else:
        print(_table(report))
        for key, value in extra.items():
            print(f"{key}: {value}")
        if report.dead_letter_messages:
            print(f"dead-letter queue: {report.dead_letter_messages} chunk(s) could not be delivered")
    return EXIT_OK if report.ok else EXIT_RUN_FAILED


def _table(report: Any) -> str:
    header = ("sync", "status", "rows read", "sent", "batches", "rejected", "seconds")
    rows = [
        (
            r.sync,
            r.status,
            f"{r.rows_read:,}",
            f"{r.sent:,}",
            f"{r.batches:,}",
            f"{r.rejected:,}",
            f"{r.seconds:.2f}",
        )
        for r in report.runs
    ]
    lines = table(header, rows)
    for r in report.runs:
        if r.error:
            lines.append(f"{r.sync}: {r.error}")
        for reason, count in r.rejection_reasons.items():
            lines.append(f"{r.sync}: rejected {count:,}: {reason}")
    lines.append(f"total: {report.seconds:.2f} s")
    return "\n".join(lines)

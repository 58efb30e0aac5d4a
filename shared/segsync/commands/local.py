"""``segsync run --local FILE`` and ``segsync demo``: syncs through the real handlers on a local stack."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segsync.changes import check_options
from segsync.commands import EXIT_OK, EXIT_RUN_FAILED, print_json, table
from segsync.config import Project, SegmentConnection, load_project
from segsync.console import Progress, add_verbose, function_logs, log_path
from segsync.errors import ConfigError
from segsync.local import CHECKOUT
from segsync.local.driver import DEFAULT_TICK_S

DEMO_DIR = CHECKOUT / "demo"
DEMO_PROJECT = DEMO_DIR / "segsync.yml"
DEMO_WRITE_KEY = "segsync-demo-write-key"
CAPTURE_PORT = 8765
CAPTURE_EVENTS_PER_SECOND = 1_000_000
"""The capture endpoint is not Segment: no 1,000 events/s workspace budget to respect."""
REHEARSAL_KEY_ENV = "SEGMENT_REHEARSAL_WRITE_KEY"
"""A rehearsal never needs (nor sends) the project's real write key: the capture endpoint gets this one."""
FAULTS_HELP = (
    "inject faults at the local capture endpoint to rehearse delivery under them, e.g. "
    "'seq=429,500,reset,reset_after,slow;rate=0.2;status=503;seed=7;retry_after=1;slow=20' "
    "(a status, reset, reset_after, slow or ok per request, then a seeded error rate)"
)


def register(commands: Any) -> None:
    from segsync.commands.aws import run_in_stack

    run = commands.add_parser(
        "run",
        help="run syncs locally (FILE --local) or start one in a deployed stack (SYNC --stack NAME)",
    )
    run.add_argument("file", metavar="TARGET", help="with --local: a project file; with --stack: the sync to run")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", action="store_true", help="run on a local stack (moto on loopback)")
    where.add_argument("--stack", metavar="NAME", help="start the run in this deployed CloudFormation stack")
    run.add_argument(
        "--sync",
        action="append",
        dest="syncs",
        metavar="NAME",
        help="with --local: only this sync (repeatable)",
    )
    run.add_argument("--full-resync", action="store_true", help="ignore state: send every row again")
    run.add_argument(
        "--mark-synced",
        action="store_true",
        help="a baseline: record every current row as delivered without sending anything (rows another tool "
        "already synced); the next run sends only what changes after it",
    )
    run.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="send removals even when more than the sync's max_removed_share of its keys left the model, or "
        "the model returned no rows (a run refuses them otherwise)",
    )
    run.add_argument(
        "--faults",
        metavar="SPEC",
        help="with --local: send to a local capture endpoint instead of the project's destination, and "
        + FAULTS_HELP.removeprefix("inject faults at the local capture endpoint ")
        + "; state is kept apart from the real destination's",
    )
    run.add_argument(
        "--capture-port",
        type=int,
        default=CAPTURE_PORT,
        help=f"with --faults: the capture endpoint's port (default {CAPTURE_PORT}; its state is the same on any port)",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="with --stack: follow the run to its outcome, printing progress on stderr; exit 0 committed, "
        "1 failed, abandoned or skipped, 3 timeout",
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: give up waiting after this long (exit 3; the run goes on)",
    )
    _add_tick_seconds(run)
    run.add_argument("--json", action="store_true", help="machine-readable summary")
    add_verbose(run)
    run.set_defaults(command=lambda args: run_in_stack(args) if args.stack and not args.faults else run_project(args))

    demo = commands.add_parser("demo", help="build the demo warehouse and run its syncs locally")
    demo.add_argument("--endpoint", help="a Segment-compatible API base instead of the local capture endpoint")
    demo.add_argument(
        "--events-per-second",
        type=int,
        metavar="N",
        help="pace toward --endpoint (default: the project's, 1,000/s as Segment asks)",
    )
    demo.add_argument("--json", action="store_true", help="machine-readable summary")
    demo.add_argument("--dir", type=Path, default=DEMO_DIR, help="where the demo warehouse and captured payloads live")
    demo.add_argument(
        "--capture-port",
        type=int,
        default=CAPTURE_PORT,
        help=f"the capture endpoint's port (default {CAPTURE_PORT}; the demo's state is the same on any port)",
    )
    demo.add_argument("--faults", metavar="SPEC", help=FAULTS_HELP)
    _add_tick_seconds(demo)
    add_verbose(demo)
    demo.set_defaults(command=run_demo)


def run_project(args: argparse.Namespace) -> int:
    from segsync.local.run import run_local

    if args.stack:
        raise ConfigError("--faults rehearses on a local stack (--local), not in a deployed one")
    if args.wait or args.timeout is not None:
        raise ConfigError("--wait and --timeout follow a run in a deployed stack (--stack); --local always waits")
    if args.mark_synced and not args.syncs:
        raise ConfigError("--mark-synced records rows as delivered without sending them: name the syncs with --sync")
    check_options(full_resync=args.full_resync, baseline=args.mark_synced)
    faults = _fault_plan(args.faults) if args.faults is not None else None
    project = load_project(args.file)
    progress = Progress(sys.stderr)
    with function_logs(log_path(Path(args.file).parent), verbose=args.verbose) as logs:
        if faults is None:
            report = run_local(
                project,
                args.syncs,
                full_resync=args.full_resync,
                mark_synced=args.mark_synced,
                allow_mass_removal=args.allow_mass_removal,
                project_file=str(args.file),
                progress=progress,
                tick_seconds=args.tick_seconds,
            )
            return _report(report, args, extra=_logs(logs))
        captured = Path(tempfile.mkdtemp(prefix="segsync-rehearsal-")) / "captured.ndjson"
        saved = os.environ.get(REHEARSAL_KEY_ENV)
        os.environ[REHEARSAL_KEY_ENV] = DEMO_WRITE_KEY
        try:
            with _capture(captured, args.capture_port, faults) as capture:
                rehearsal = _rehearsal(project, capture.url)
                report = run_local(
                    rehearsal,
                    args.syncs,
                    full_resync=args.full_resync,
                    mark_synced=args.mark_synced,
                    allow_mass_removal=args.allow_mass_removal,
                    progress=progress,
                    tick_seconds=args.tick_seconds,
                )
                capture.wait_idle()
        finally:
            if saved is None:
                os.environ.pop(REHEARSAL_KEY_ENV, None)
            else:
                os.environ[REHEARSAL_KEY_ENV] = saved
    return _report(report, args, extra={**_figures(capture, args.faults, captured), **_logs(logs)})


def run_demo(args: argparse.Namespace) -> int:
    from segsync.local.demo import build_warehouse
    from segsync.local.run import run_local

    if args.faults and args.endpoint:
        raise ConfigError("--faults injects faults at the local capture endpoint; it cannot reach --endpoint")
    faults = _fault_plan(args.faults) if args.faults else None
    project = _in_dir(load_project(DEMO_PROJECT), args.dir)
    warehouse = Path(project.connections["warehouse"].path)
    built = build_warehouse(warehouse)
    if not args.json:
        print(f"demo warehouse: {warehouse} ({'built now' if built else 'reused'})")
    if not os.environ.get("SEGMENT_WRITE_KEY"):
        os.environ["SEGMENT_WRITE_KEY"] = DEMO_WRITE_KEY
    progress = Progress(sys.stderr)
    with function_logs(log_path(args.dir), verbose=args.verbose) as logs:
        if args.endpoint:
            there = _with_endpoint(project, args.endpoint, events_per_second=args.events_per_second)
            report = run_local(there, progress=progress, tick_seconds=args.tick_seconds)
            return _report(report, args, extra={"endpoint": args.endpoint, **_logs(logs)})
        out = args.dir / "out"
        out.mkdir(parents=True, exist_ok=True)
        captured = out / "captured.ndjson"
        captured.unlink(missing_ok=True)
        with _capture(captured, args.capture_port, faults) as capture:
            here = _with_endpoint(project, capture.url, events_per_second=CAPTURE_EVENTS_PER_SECOND, local_capture=True)
            report = run_local(here, progress=progress, tick_seconds=args.tick_seconds)
            capture.wait_idle()
    if faults is not None:
        return _report(report, args, extra={**_figures(capture, args.faults, captured), **_logs(logs)})
    extra = {"endpoint": "local capture", "captured": str(captured), "received": capture.messages, **_logs(logs)}
    if not args.json and args.dir.resolve() == DEMO_DIR.resolve():
        # The demo's own project file reads this warehouse: say how to see what the next run would send.
        extra["preview the next run"] = (
            f"{_program()} preview {os.path.relpath(DEMO_PROJECT)} --sync demo-users --capture"
        )
    return _report(report, args, extra=extra)


@contextmanager
def _capture(out: Path, port: int, faults: Any) -> Iterator[Any]:
    """The capture endpoint, serving while the block runs; a port in use names the option that changes it."""
    from segsync.local.capture import CaptureServer

    server = CaptureServer(out, port=port, faults=faults)
    try:
        server.start()
    except ConfigError as exc:
        raise ConfigError(f"{exc}; choose another port with --capture-port") from None
    try:
        yield server
    finally:
        server.stop()


def _program() -> str:
    """How the user called segsync (``.venv/bin/segsync`` under ``make run``), to print commands they can paste."""
    called = Path(sys.argv[0])
    return os.path.relpath(called) if called.name == "segsync" and called.is_file() else "segsync"


def _logs(logs: Any) -> dict[str, str]:
    """Where the functions' logs went, when they went to a file (the summary names it)."""
    return {"logs": str(logs.path)} if logs is not None and logs.written else {}


def _fault_plan(spec: str) -> Any:
    from segsync.local.capture import FaultPlan

    try:
        return FaultPlan.parse(spec)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--faults {spec!r}: {exc}") from None


def _figures(capture: Any, spec: str, captured: Path) -> dict[str, Any]:
    """What the capture endpoint saw under faults: Segment would keep ``distinct`` of ``received``."""
    answered = dict(sorted(capture.statuses.items()))
    return {
        "endpoint": f"local capture, faults {spec!r}",
        "captured": str(captured),
        "requests": capture.requests,
        "faults": ", ".join(f"{kind}: {count}" for kind, count in sorted(capture.faults_injected.items())) or "none",
        "answers": ", ".join(f"{status}: {count}" for status, count in answered.items()) or "none",
        "unanswered": capture.requests - sum(answered.values()),  # resets, and slow answers given up on
        "received": capture.messages,
        "distinct": capture.distinct,  # messageIds: what Segment keeps
        "duplicates": capture.duplicates,  # on the wire, deduplicated by Segment
    }


def _rehearsal(project: Project, endpoint: str) -> Project:
    """The project with every Segment destination at the capture endpoint ``endpoint``, with a stand-in write key.

    The capture endpoint has its own state (``segsync.state.destination_id``), so a rehearsal never moves
    the real destination's state forward.
    """
    return _destinations(project, endpoint=endpoint, write_key={"env": REHEARSAL_KEY_ENV}, local_capture=True)


def _in_dir(project: Project, directory: Path) -> Project:
    """The demo project with its DuckDB warehouse in ``directory``."""
    warehouse = project.connections["warehouse"].model_copy(
        update={"path": str(directory.resolve() / "warehouse.duckdb")}
    )
    return project.model_copy(update={"connections": {**project.connections, "warehouse": warehouse}})


def _with_endpoint(
    project: Project, endpoint: str, events_per_second: int | None = None, *, local_capture: bool = False
) -> Project:
    """The same project with every Segment destination pointed at ``endpoint`` (and paced anew).

    ``local_capture``: ``endpoint`` is segsync's capture endpoint, whose state does not depend on its port.
    """
    pace = {"events_per_second": events_per_second} if events_per_second else {}
    return _destinations(project, endpoint=endpoint, local_capture=local_capture or None, **pace)


def _destinations(project: Project, **changes: Any) -> Project:
    """The project with ``changes`` applied to every Segment destination (validated again)."""
    connections = {
        name: SegmentConnection.model_validate({**c.model_dump(), **changes}) if isinstance(c, SegmentConnection) else c
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
    header = ("sync", "status", "rows read", "new", "changed", "removed", "sent", "batches", "rejected", "seconds")
    rows = [
        (
            r.sync,
            r.status,
            f"{r.rows_read:,}",
            f"{r.new:,}",
            f"{r.changed:,}",
            f"{r.removed:,}",
            f"{r.sent:,}",
            f"{r.batches:,}",
            f"{r.rejected:,}",
            f"{r.seconds:.2f}",
        )
        for r in report.runs
    ]
    lines = table(header, rows)
    for r in report.runs:
        if r.baseline:
            lines.append(f"{r.sync}: baseline: {r.committed:,} rows recorded as delivered, nothing sent")
        if r.warning:
            lines.append(f"{r.sync}: {r.warning}")
        if r.error:
            lines.append(f"{r.sync}: {r.error}")
        for reason, count in r.rejection_reasons.items():
            lines.append(f"{r.sync}: rejected {count:,}: {reason}")
    lines.append(f"total: {report.seconds:.2f} s")
    return "\n".join(lines)


def _add_tick_seconds(parser: argparse.ArgumentParser) -> None:
    """The ``--tick-seconds`` flag of every command that runs syncs locally."""
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=DEFAULT_TICK_S,
        metavar="N",
        help="tick the planner every N seconds while the senders work, as EventBridge would (default "
        f"{DEFAULT_TICK_S:g}): checkpoints, next waves, lock renewal, commit",
    )

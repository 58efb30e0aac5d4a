"""``segsync push FILE --stack NAME`` and ``segsync run SYNC --stack NAME``: a deployed stack from the CLI."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from segsync import deployed
from segsync.changes import check_options
from segsync.commands import EXIT_OK, EXIT_RUN_FAILED, EXIT_TIMEOUT, dbt_lines, dbt_models, print_json
from segsync.config import load_project
from segsync.errors import ConfigError
from segsync.follow import follow
from segsync.planner import new_run_id
from segsync.store import RunStore, SyncStore
from segsync.summary import summarize

WAIT_EXIT_CODES = {"committed": EXIT_OK, "timeout": EXIT_TIMEOUT, "not started": EXIT_TIMEOUT}
"""Every other outcome (failed, abandoned, skipped) is EXIT_RUN_FAILED."""


def register(commands: Any) -> None:
    push = commands.add_parser(
        "push",
        help="write a project file's connections and syncs into a deployed stack's syncs table",
        description=(
            "Validate FILE, show how its connections and syncs differ from the stack's syncs table "
            "(added, changed, removed), and write them after confirmation. Items absent from the "
            "file are kept unless --prune."
        ),
    )
    push.add_argument("file", type=Path, metavar="FILE")
    push.add_argument("--stack", required=True, metavar="NAME", help="the CloudFormation stack name")
    push.add_argument("--yes", action="store_true", help="write without asking")
    push.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    push.add_argument("--prune", action="store_true", help="also delete items that are not in the file")
    push.add_argument("--json", action="store_true", help="machine-readable diff and result")
    push.set_defaults(command=push_project)


def push_project(args: argparse.Namespace) -> int:
    """Diff the file against the table, confirm, write (and prune when asked)."""
    project = load_project(args.file)
    outputs = deployed.stack_outputs(args.stack)
    with deployed.aws_errors(f"syncs table '{outputs.syncs_table}'"):
        table = deployed.aws_table(outputs.syncs_table)
        plan = deployed.plan_push(deployed.project_items(project), deployed.table_items(table))
    deletes = plan.removed if args.prune else []
    to_do = plan.writes + len(deletes)
    models = dbt_models(project)
    if not args.json:
        _print_plan(outputs, plan, prune=args.prune)
        for line in dbt_lines(models):
            print(line)
    written = False
    if to_do and not args.dry_run:
        if not args.yes and not _confirm(
            f"write {plan.writes} and delete {len(deletes)} item(s) in {outputs.syncs_table}?",
            sys.stdin,
        ):
            raise ConfigError("nothing written: not confirmed (pass --yes to write without asking)")
        with deployed.aws_errors(f"writing syncs table '{outputs.syncs_table}'"):
            SyncStore(table).push(project)
            deployed.delete_items(table, deletes)
        written = True
    if args.json:
        print_json(
            {
                "ok": True,
                "stack": outputs.stack,
                "table": outputs.syncs_table,
                "added": [_key(k) for k in plan.added],
                "changed": [{"kind": c.kind, "name": c.name, "fields": list(c.fields)} for c in plan.changed],
                "removed": [_key(k) for k in plan.removed],
                "unchanged": plan.unchanged,
                "pruned": [_key(k) for k in deletes] if written else [],
                "written": written,
                "dbt_models": models,
            }
        )
    elif not to_do:
        print("up to date: nothing to write")
    elif written:
        print(f"wrote {len(deployed.project_items(project))} item(s), deleted {len(deletes)}")
    else:
        print("dry run: nothing written")
    return EXIT_OK


def run_in_stack(args: argparse.Namespace) -> int:
    """Start one sync's run in the stack (the planner, invoked asynchronously, records it); with --wait follow it."""
    if args.syncs:
        raise ConfigError(
            "with --stack, name the one sync as TARGET (segsync run NAME --stack STACK); --sync is for --local"
        )
    if args.timeout is not None and not args.wait:
        raise ConfigError("--timeout is how long --wait waits: pass --wait too")
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout:g}: give a number of seconds above 0")
    check_options(full_resync=args.full_resync, baseline=args.mark_synced)
    name = str(args.file)
    outputs = deployed.stack_outputs(args.stack)
    # Refuse at once what the planner would only fail later, out of sight: a missing or invalid item.
    with deployed.aws_errors(f"syncs table '{outputs.syncs_table}'"):
        try:
            sync = SyncStore(deployed.aws_table(outputs.syncs_table)).sync(name)
        except ConfigError as exc:
            raise ConfigError(f"stack '{outputs.stack}': {exc}") from None
    run_id = new_run_id()
    request_id = deployed.start_run(
        outputs.planner_function,
        name,
        full_resync=args.full_resync,
        run_id=run_id,
        mark_synced=args.mark_synced,
        allow_mass_removal=args.allow_mass_removal,
    )
    started = {
        "stack": outputs.stack,
        "sync": name,
        "run_id": run_id,
        "full_resync": args.full_resync,
        **({"mark_synced": True} if args.mark_synced else {}),
        "function": outputs.planner_function,
        "request_id": request_id,
    }
    if args.wait:
        return _wait(outputs, started, args)
    if args.json:
        print_json({"ok": True, **started})
        return EXIT_OK
    kind = "full resync" if args.full_resync else "baseline (--mark-synced)" if args.mark_synced else "run"
    print(f"started a {kind} of sync '{name}' on stack {outputs.stack}: run {run_id}")
    if not sync.enabled:
        print(f"note: sync '{name}' is disabled; a run asked for by name runs anyway, the schedule skips it")
    print(f"  planner: {outputs.planner_function} (request {request_id})")
    print(f"  history: runs table {outputs.runs_table}, items with pk = sync#{name}")
    if outputs.planner_log_group:
        print(f"  logs:    aws logs tail {outputs.planner_log_group} --follow")
    return EXIT_OK


def _wait(outputs: deployed.StackOutputs, started: dict[str, Any], args: argparse.Namespace) -> int:
    """Follow the run to its outcome: progress on stderr, the outcome on stdout; the exit code says which."""
    sync, run_id = started["sync"], started["run_id"]
    sys.stderr.write(f"waiting for run {run_id} of sync '{sync}' on stack {outputs.stack}\n")
    with deployed.aws_errors(f"runs table '{outputs.runs_table}'"):
        runs = RunStore(deployed.aws_table(outputs.runs_table))
        followed = follow(
            runs,
            sync,
            run_id,
            timeout_s=args.timeout,
            on_progress=lambda line: sys.stderr.write(line + "\n"),
            clock=deployed.wait_clock,
            sleep=deployed.wait_sleep,
        )
        summary = asdict(summarize(runs, sync, run_id)) if followed.run else {}
    code = WAIT_EXIT_CODES.get(followed.outcome, EXIT_RUN_FAILED)
    if args.json:
        print_json({"ok": code == EXIT_OK, **started, **summary, "outcome": followed.outcome})
        return code
    if followed.outcome == "timeout":
        print(f"run {run_id} of sync '{sync}': no outcome after {followed.seconds:.0f} s (it goes on; exit 3)")
    elif followed.outcome == "not started":
        print(
            f"run {run_id} of sync '{sync}': the planner has not recorded it after {followed.seconds:.0f} s; "
            f"see its logs ({outputs.planner_log_group or outputs.planner_function})"
        )
    else:
        print(
            f"run {run_id} of sync '{sync}' {followed.outcome}: {summary['rows_read']:,} rows read, "
            f"{summary['sent']:,} sent, {summary['rejected']:,} rejected, {summary['committed']:,} committed "
            f"({summary['seconds']:.1f} s)"
        )
        if summary.get("error"):
            print(f"  {summary['error']}")
    return code


def _print_plan(outputs: deployed.StackOutputs, plan: deployed.PushPlan, *, prune: bool) -> None:
    print(f"stack {outputs.stack}: syncs table {outputs.syncs_table}")
    for kind, name in plan.added:
        print(f"  + {kind} {name}")
    for change in plan.changed:
        print(f"  ~ {change.kind} {change.name}: {', '.join(change.fields)}")
    for kind, name in plan.removed:
        print(f"  - {kind} {name}" if prune else f"  ! {kind} {name}: not in the file, kept (--prune deletes it)")
    if plan.unchanged:
        print(f"  = {plan.unchanged} unchanged")


def _confirm(question: str, stdin: TextIO) -> bool:
    """Ask on stderr (stdout may be piped); without a terminal there is nobody to ask."""
    if not stdin.isatty():
        raise ConfigError("nothing written: no terminal to confirm on (pass --yes to write without asking)")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return stdin.readline().strip().lower() in {"y", "yes"}


def _key(key: deployed.ItemKey) -> dict[str, str]:
    return {"kind": key[0], "name": key[1]}

"""``segsync preview FILE --sync NAME``: what the next run would send, read from the warehouse; nothing sent or written.

The next run's diff is the planner's own query (``WarehouseState.diff_query``), run as a read: no run table,
and no bookkeeping schema when there is none yet. ``--all`` shows the whole model, as a full resync sends it.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from segsync.changes import (
    EVENT_OF,
    NEW,
    REMOVED,
    ChunkValues,
    check_removals,
    sends_changes,
    sent_kinds,
    silent_kinds,
    tracks_removals,
)
from segsync.commands import EXIT_OK, EXIT_RUN_FAILED, print_json
from segsync.config import AnySync, SegmentConnection, load_project
from segsync.console import add_verbose, function_logs, log_path
from segsync.errors import MassRemoval, WarehouseError
from segsync.mapping import MESSAGE_TYPES, Mapped, Mapper, row_message_id
from segsync.planner import FETCH_ROWS, check_key, encode_row
from segsync.state import (
    CHANGE,
    INTERNAL_COLUMNS,
    KEY,
    KEY_COUNT,
    KEYED_COLUMNS,
    LOCAL_CAPTURE,
    WarehouseState,
    destination_id,
    nested,
)
from segsync.store import Rejection, reason_kind
from segsync.warehouse import connect
from segsync.warehouse.dialect import ModelColumn
from segsync.warehouse.policy import WarehousePolicy

DEFAULT_LIMIT = 5
SKIPPED = f"{CHANGE} = 'unchanged' AND {KEY} IS NOT NULL AND {KEY_COUNT} = 1"
"""Rows of the diff a run leaves alone: delivered before as they are now (the planner streams the others)."""


def register(commands: Any) -> None:
    preview = commands.add_parser(
        "preview",
        help="show what the next run of a sync would send: new, changed, unchanged, removed and rejected rows, "
        "rejections by reason, the first payloads of each kind of change (sends nothing, writes nothing)",
    )
    preview.add_argument("file", type=Path)
    preview.add_argument("--sync", required=True, metavar="NAME", help="the sync to preview")
    preview.add_argument(
        "--limit",
        type=_count,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"how many payloads to show of each kind of change (default {DEFAULT_LIMIT})",
    )
    preview.add_argument("--key", metavar="VALUE", help="only the row whose key is VALUE")
    whose = preview.add_mutually_exclusive_group()
    whose.add_argument(
        "--all",
        action="store_true",
        help="every row of the model, as a full resync would send it (state is not read)",
    )
    whose.add_argument(
        "--capture",
        action="store_true",
        help="compare with what segsync's local capture endpoint received (segsync demo, run --local --faults) "
        "instead of the project's Segment destination",
    )
    preview.add_argument("--json", action="store_true", help="machine-readable output")
    add_verbose(preview)
    preview.set_defaults(command=run)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}")
    return int(text)


@dataclass
class ReasonGroup:
    """Rejections that say the same thing but for the values quoted in them."""

    field: str
    reason: str
    count: int = 0
    example_key: str | None = None
    example_reason: str = ""


class Payload(NamedTuple):
    """A message a run would send: its row's key, the message, its size, and why it goes (new or changed)."""

    key: str
    message: dict[str, Any]
    size: int
    change: str | None


@dataclass
class Preview:
    """What a run of one sync would do with the model's rows as they are now.

    Attributes:
        destination: the destination whose state the rows were compared with; None for the whole model (--all).
        changes: rows by change kind: ``new`` and ``changed`` go out (rejected ones aside), ``unchanged`` do not;
            where removals are sent, ``removed`` rows too.
        sends: the messages a run would send, by change kind (rows of a kind the sync sends nothing for are only
            recorded as delivered).
        removed: keys delivered before that the model no longer has (sent only where the sync sends removals).
        warning: why the next run would fail before sending anything (too many removals at once), if it would.
        delivered: keys the state holds for this sync and destination.
        legacy: of those, keys segsync 0.1 wrote, which the next run re-keys before its diff.
        elsewhere: other destinations the state holds this sync's keys for.
    """

    sync: str
    object: str
    destination: str | None = None
    rows: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    removed: int = 0
    sends: Counter[str] = field(default_factory=Counter)
    warning: str | None = None
    delivered: int = 0
    legacy: int = 0
    elsewhere: list[str] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    reasons: dict[tuple[str, str], ReasonGroup] = field(default_factory=dict)
    payloads: list[Payload] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        kind = reason_kind(rejection.reason)
        group = self.reasons.setdefault((rejection.field, kind), ReasonGroup(rejection.field, kind))
        group.count += 1
        if group.count == 1:
            group.example_key, group.example_reason = rejection.key, rejection.reason

    def add(self, checked: bytes | Rejection, mapper: Mapper, *, limit: int, change: str | None = None) -> None:
        """A row as the planner left it (a chunk row or why not), through the sender's mapping."""
        mapped = checked if isinstance(checked, Rejection) else mapper.map(orjson.loads(checked))
        if isinstance(mapped, Rejection):
            self.reject(mapped)
            return
        self.messages[MESSAGE_TYPES[self.object]] += 1
        if change is not None:
            self.changes[change] += 1
        self.sends[change] += 1
        if self.sends[change] <= limit:
            self.payloads.append(_shown(mapped, change))

    def as_dict(self) -> dict[str, Any]:
        next_run = {
            "destination": self.destination,
            "new": self.changes["new"],
            "changed": self.changes["changed"],
            "unchanged": self.changes["unchanged"],
            "removed": self.removed,
            "sends": {kind: n for kind, n in self.sends.items() if kind is not None},
            "warning": self.warning,
            "delivered": self.delivered,
            "legacy_keys": self.legacy,
            "other_destinations": self.elsewhere,
        }
        return {
            "ok": True,
            "sync": self.sync,
            "object": self.object,
            "rows": self.rows,
            **(next_run if self.destination is not None else {}),
            "rejected": self.rejected,
            "messages": dict(self.messages),
            "rejections": [
                {
                    "field": g.field,
                    "reason": g.reason,
                    "count": g.count,
                    "example": {"key": g.example_key, "reason": g.example_reason},
                }
                for g in self.grouped()
            ],
            "payloads": [p.message for p in self.payloads],
            "columns": self.columns,
            "seconds": round(self.seconds, 3),
        }

    def grouped(self) -> list[ReasonGroup]:
        return sorted(self.reasons.values(), key=lambda g: (-g.count, g.field, g.reason))


def preview_sync(sync: AnySync, state: WarehouseState, *, limit: int, key: str | None = None) -> Preview:
    """Run the model and map every row as a run would (a full resync); keep counts and the first payloads.

    Rows get the planner's checks (null and duplicate keys, rows that cannot be serialized or are too
    big) and its key texts and messageIds (as if never delivered), then travel as they would in a chunk
    (serialized and read back), then the sender's mapping. Nothing is sent and no sync state is read
    or written.
    """
    started = time.monotonic()
    result = Preview(sync=sync.name, object=sync.object)
    columns = state.model_columns(sync.sql)
    result.columns = [c.name for c in columns]
    values = ChunkValues(sync, columns, found_at=time.time())
    mapper = Mapper(sync, values.names)
    model = f"SELECT * FROM (\n{nested(sync.sql)}\n) AS src"
    for batch in state.warehouse.stream(state.keyed(sync, columns, model), FETCH_ROWS):
        for raw in batch.rows:
            row_key, key_count, row_hash = raw[:KEYED_COLUMNS]
            if key is not None and row_key != key:
                continue
            result.rows += 1
            checked = check_key(row_key, key_count, sync.key)
            if checked is None:
                message_id = row_message_id(sync, row_key, None, row_hash, None, change=NEW)
                checked = encode_row(row_key, (row_key, message_id, *values(NEW, None, raw[KEYED_COLUMNS:])))
            result.add(checked, mapper, limit=limit)
    result.seconds = time.monotonic() - started
    return result


def preview_next_run(
    sync: AnySync, state: WarehouseState, destination: str, *, limit: int, key: str | None = None
) -> Preview:
    """What the next run would do: the planner's diff against what ``destination`` received, only read.

    Rows a run would stream (new, changed, bad keys, and removed keys where the sync sends removals) get the
    planner's checks and the messageIds it would write (from the key, the hash delivered last and the new one;
    ids a run scopes to itself are shown without its id), then travel as in a chunk, then the sender's mapping;
    unchanged rows and removed keys are counted in the warehouse. Rows of a kind the sync sends nothing for
    are counted, not mapped. Without a bookkeeping schema every row is new, and none is created.
    """
    started = time.monotonic()
    result = Preview(sync=sync.name, object=sync.object, destination=destination)
    columns = state.model_columns(sync.sql)
    result.columns = [c.name for c in columns]
    values = ChunkValues(sync, columns, found_at=time.time())
    mapper = Mapper(sync, values.names)
    silent = silent_kinds(sync, baseline=False)
    for row in _next_run_rows(sync, state, destination, columns, key, result):
        row_key, key_count, row_hash, previous_hash, change, _, previous_values = row[:INTERNAL_COLUMNS]
        result.rows += change != REMOVED
        checked = check_key(row_key, key_count, sync.key)
        if checked is None and change in silent:
            result.changes[change] += 1
            continue
        if checked is None:
            message_id = row_message_id(sync, row_key, previous_hash, row_hash, None, change=change)
            checked = encode_row(
                row_key, (row_key, message_id, *values(change, previous_values, row[INTERNAL_COLUMNS:]))
            )
        result.add(checked, mapper, limit=limit, change=change)
    result.rows += result.changes["unchanged"]
    if tracks_removals(sync) and key is None:
        try:
            check_removals(sync, removed=result.removed, delivered=result.delivered, rows=result.rows, allowed=False)
        except MassRemoval as exc:
            result.warning = f"the next run would fail: {exc}"
    result.seconds = time.monotonic() - started
    return result


def _next_run_rows(
    sync: AnySync,
    state: WarehouseState,
    destination: str,
    columns: list[ModelColumn],
    key: str | None,
    result: Preview,
) -> Iterator[tuple[Any, ...]]:
    """The diff's rows a run would stream, shaped as the run table's; counts what it would not into ``result``."""
    d = state.dialect
    only = f" AND {KEY} = {d.literal(key)}" if key is not None else ""
    if not state.exists(state.state_table):
        model = f"SELECT * FROM (\n{nested(sync.sql)}\n) AS src"
        keyed = f"SELECT * FROM (\n{state.keyed(sync, columns, model)}\n) AS k"
        if key is not None:
            keyed += f" WHERE {KEY} = {d.literal(key)}"
        for batch in state.warehouse.stream(keyed, FETCH_ROWS):
            for raw in batch.rows:
                yield (*raw[:KEYED_COLUMNS], None, NEW, None, None, *raw[KEYED_COLUMNS:])
        return
    counts = state.warehouse.query(
        f"SELECT DESTINATION, COUNT(*) FROM {state.state_table} "
        f"WHERE SYNC = {d.literal(sync.name)} GROUP BY DESTINATION"
    )
    result.delivered = sum(n for where, n in counts if where == destination)
    result.elsewhere = sorted(where for where, _ in counts if where != destination)
    if result.delivered:
        result.legacy = _legacy_keys(state, sync.name, destination)
        removed = f"SELECT COUNT(*) FROM (\n{state.removed_query(sync, destination, columns)}\n) AS r"
        if key is not None:
            removed += f" WHERE r.ROW_KEY = {d.literal(key)}"
        result.removed = state.warehouse.query(removed)[0][0]
    diff = f"SELECT * FROM (\n{state.diff_query(sync, destination, columns, full_resync=False)}\n) AS d"
    result.changes["unchanged"] = state.warehouse.query(f"SELECT COUNT(*) FROM ({diff}) AS u WHERE {SKIPPED}{only}")[0][
        0
    ]
    for batch in state.warehouse.stream(f"{diff} WHERE NOT ({SKIPPED}){only}", FETCH_ROWS):
        yield from batch.rows


def _legacy_keys(state: WarehouseState, sync_name: str, destination: str) -> int:
    """Keys segsync 0.1 wrote for the sync (key format 1): the next run re-keys them before its diff."""
    where = state.delivered_to(sync_name, destination)
    # A schema segsync 0.1 made has no version table and no KEY_FORMAT column yet: all its keys are format 1.
    if state.exists(state.version_table):
        where += " AND KEY_FORMAT IS NULL"
    return state.warehouse.query(f"SELECT COUNT(*) FROM {state.state_table} WHERE {where}")[0][0]


def _shown(mapped: Mapped, change: str | None) -> Payload:
    return Payload(mapped.key, orjson.loads(mapped.body), len(mapped.body), change)


def compared_with(destination: SegmentConnection, *, capture: bool) -> str:
    """The destination whose state a preview reads: the project's, or segsync's local capture endpoint."""
    return destination_id(destination.model_copy(update={"local_capture": True}) if capture else destination)


def run(args: argparse.Namespace) -> int:
    project = load_project(args.file)
    sync = project.sync(args.sync)
    source = project.connections[sync.source]
    destination = None if args.all else compared_with(project.connections[sync.destination], capture=args.capture)
    WarehousePolicy.for_project(project).check(sync.name, sync.source, source)
    with function_logs(log_path(args.file.parent), verbose=args.verbose):
        try:
            with connect(source) as warehouse:
                state = WarehouseState(warehouse, source.state_schema)
                if destination is None:
                    result = preview_sync(sync, state, limit=args.limit, key=args.key)
                else:
                    result = preview_next_run(sync, state, destination, limit=args.limit, key=args.key)
        except WarehouseError as exc:
            raise WarehouseError(f"sync '{sync.name}': model query failed: {exc}") from None
    found = args.key is None or result.rows > 0 or result.changes[REMOVED] > 0
    if args.json:
        print_json({**result.as_dict(), "ok": found, "key": args.key})
    else:
        print(_text(result, sync, args.key, limit=args.limit))
    return EXIT_OK if found else EXIT_RUN_FAILED


def _text(result: Preview, sync: AnySync, key: str | None, *, limit: int) -> str:
    kind = MESSAGE_TYPES[sync.object]
    what = "the whole model" if result.destination is None else "the next run"
    lines = [
        f"preview of {what} of sync '{sync.name}': {sync.object} → {kind} ({sync.behavior}), "
        f"from '{sync.source}' to '{sync.destination}'",
        *_compared(result),
        "",
    ]
    if key is not None and result.rows == 0 and not result.changes[REMOVED]:
        gone = ": it was delivered before and is no longer in the model (a run sends nothing for it)"
        lines.append(f"no row has key {key!r}{gone if result.removed else ''}")
        return "\n".join(lines)
    sent = sum(result.messages.values())
    lines += _counts(result, sent, sync)
    if result.warning:
        lines += ["", result.warning]
    if result.reasons:
        lines += ["", "rejected, by reason:"]
        for group in result.grouped():
            lines.append(f"  {group.count:>8,}  {group.field}: {group.reason}")
            lines.append(f"            e.g. key {group.example_key!r}: {group.example_reason}")
    for change, count in result.sends.items():
        shown = [p for p in result.payloads if p.change == change]
        if not shown:
            continue
        of = f"{count:,} {change} messages" if change else f"{count:,} messages"
        lines += ["", f"first {len(shown)} of {of} (sentAt is added at send time):"]
        for payload in shown:
            why = f" ({payload.change})" if payload.change else ""
            lines.append(f"--- key {payload.key!r}{why}, {payload.size:,} bytes")
            lines.append(orjson.dumps(payload.message, option=orjson.OPT_INDENT_2).decode())
    if sent and limit == 0:
        lines += ["", "(--limit 0: no payloads shown)"]
    lines.append(f"\n{result.seconds:.2f} s")
    return "\n".join(lines)


def _compared(result: Preview) -> list[str]:
    """What the rows were compared with, in a line or two."""
    if result.destination is None:
        return ["nothing was sent or written; state was not read (every row counts, as in a full resync)"]
    lines = [f"compared with what was delivered to {result.destination}; nothing was sent or written"]
    if not result.delivered:
        lines.append("nothing was delivered there yet: every row is new")
        if result.elsewhere:
            capture = " (--capture compares with that)" if LOCAL_CAPTURE in result.elsewhere else ""
            lines.append(f"this sync was delivered to: {', '.join(result.elsewhere)}{capture}")
    if result.legacy:
        lines.append(
            f"{result.legacy:,} delivered keys were written by segsync 0.1: the next run re-keys them first, "
            "so some rows counted here as new or changed may turn out unchanged"
        )
    return lines


def _counts(result: Preview, sent: int, sync: AnySync) -> list[str]:
    kind = MESSAGE_TYPES[sync.object]
    if result.destination is None:
        rows = [("rows", result.rows, ""), ("messages", sent, kind), ("rejected", result.rejected, "")]
    else:
        rows = [
            ("rows", result.rows, ""),
            ("new", result.changes["new"], _what(sync, "new")),
            ("changed", result.changes["changed"], _what(sync, "changed")),
            ("unchanged", result.changes["unchanged"], "delivered before as they are: not sent"),
            ("rejected", result.rejected, ""),
            ("removed", result.removed, _what(sync, REMOVED)),
        ]
    label = max(len(name) for name, _, _ in rows) + 2
    width = max(len(f"{n:,}") for _, n, _ in rows)
    return [f"{name:<{label}}{n:>{width},}  {note}".rstrip() for name, n, note in rows]


def _what(sync: AnySync, change: str) -> str:
    """What a row of ``change`` becomes in the next run of ``sync``, in a few words."""
    kind = MESSAGE_TYPES[sync.object]
    if change not in sent_kinds(sync):
        if change == REMOVED and not tracks_removals(sync):
            return "delivered before, no longer in the model: nothing is sent for them"
        return f"recorded as delivered, not sent (no '{EVENT_OF[change]}' event is named)"
    if sends_changes(sync):
        return f"to send (track '{getattr(sync.events, EVENT_OF[change])}')"
    if change == REMOVED:
        return f"to send ({kind} with every trait null: on_removal clear)"
    return f"to send ({kind})"

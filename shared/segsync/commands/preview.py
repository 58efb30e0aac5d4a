"""``segsync preview FILE --sync NAME``: the messages a run would send, read from the warehouse; none sent."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from segsync.commands import EXIT_OK, EXIT_RUN_FAILED, print_json
from segsync.config import AnySync, load_project
from segsync.errors import WarehouseError
from segsync.mapping import Mapped, Mapper, row_message_id
from segsync.planner import FETCH_ROWS, check_key, encode_row
from segsync.state import KEYED_COLUMNS, WarehouseState, nested
from segsync.store import Rejection, reason_kind
from segsync.warehouse import connect

DEFAULT_LIMIT = 5
MESSAGE_TYPES = {"user": "identify", "group": "group", "track": "track"}


def register(commands: Any) -> None:
    preview = commands.add_parser(
        "preview",
        help="show what a sync would send: counts, rejections and the first payloads (sends nothing)",
    )
    preview.add_argument("file", type=Path)
    preview.add_argument("--sync", required=True, metavar="NAME", help="the sync to preview")
    preview.add_argument(
        "--limit",
        type=_count,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"how many payloads to show (default {DEFAULT_LIMIT})",
    )
    preview.add_argument("--key", metavar="VALUE", help="only the row whose key is VALUE")
    preview.add_argument("--json", action="store_true", help="machine-readable output")
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


@dataclass
class Preview:
    """What a run of one sync would do with the model's rows as they are now."""

    sync: str
    object: str
    rows: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    reasons: dict[tuple[str, str], ReasonGroup] = field(default_factory=dict)
    payloads: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        kind = reason_kind(rejection.reason)
        group = self.reasons.setdefault((rejection.field, kind), ReasonGroup(rejection.field, kind))
        group.count += 1
        if group.count == 1:
            group.example_key, group.example_reason = rejection.key, rejection.reason

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "sync": self.sync,
            "object": self.object,
            "rows": self.rows,
            "messages": dict(self.messages),
            "rejected": self.rejected,
            "rejections": [
                {
                    "field": g.field,
                    "reason": g.reason,
                    "count": g.count,
                    "example": {"key": g.example_key, "reason": g.example_reason},
                }
                for g in self.grouped()
            ],
            "payloads": [message for _, message, _ in self.payloads],
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
    mapper = Mapper(sync, result.columns)
    model = f"SELECT * FROM (\n{nested(sync.sql)}\n) AS src"
    for batch in state.warehouse.stream(state.keyed(sync, columns, model), FETCH_ROWS):
        for raw in batch.rows:
            row_key, key_count, row_hash = raw[:KEYED_COLUMNS]
            if key is not None and row_key != key:
                continue
            result.rows += 1
            checked = check_key(row_key, key_count, sync.key)
            if checked is None:
                message_id = row_message_id(sync, row_key, None, row_hash, None)
                checked = encode_row(row_key, (row_key, message_id, *raw[KEYED_COLUMNS:]))
            mapped = checked if isinstance(checked, Rejection) else mapper.map(orjson.loads(checked))
            if isinstance(mapped, Rejection):
                result.reject(mapped)
                continue
            result.messages[MESSAGE_TYPES[sync.object]] += 1
            if len(result.payloads) < limit:
                result.payloads.append(_shown(mapped))
    result.seconds = time.monotonic() - started
    return result


def _shown(mapped: Mapped) -> tuple[str, dict[str, Any], int]:
    return mapped.key, orjson.loads(mapped.body), len(mapped.body)


def run(args: argparse.Namespace) -> int:
    project = load_project(args.file)
    sync = project.sync(args.sync)
    source = project.connections[sync.source]
    try:
        with connect(source) as warehouse:
            result = preview_sync(sync, WarehouseState(warehouse, source.state_schema), limit=args.limit, key=args.key)
    except WarehouseError as exc:
        raise WarehouseError(f"sync '{sync.name}': model query failed: {exc}") from None
    found = args.key is None or result.rows > 0
    if args.json:
        print_json({**result.as_dict(), "ok": found, "key": args.key})
    else:
        print(_text(result, sync, args.key, limit=args.limit))
    return EXIT_OK if found else EXIT_RUN_FAILED


def _text(result: Preview, sync: AnySync, key: str | None, *, limit: int) -> str:
    kind = MESSAGE_TYPES[sync.object]
    lines = [
        f"preview of sync '{sync.name}': {sync.object} → {kind} ({sync.behavior}), from '{sync.source}'",
        "nothing was sent; sync state was neither read nor changed (every row counts, as in a full resync)",
        "",
    ]
    if key is not None and result.rows == 0:
        lines.append(f"no row has key {key!r}")
        return "\n".join(lines)
    sent = sum(result.messages.values())
    width = max(len(f"{n:,}") for n in (result.rows, sent, result.rejected))
    lines += [
        f"rows      {result.rows:>{width},}",
        f"messages  {sent:>{width},}  {kind}",
        f"rejected  {result.rejected:>{width},}",
    ]
    if result.reasons:
        lines += ["", "rejected, by reason:"]
        for group in result.grouped():
            lines.append(f"  {group.count:>8,}  {group.field}: {group.reason}")
            lines.append(f"            e.g. key {group.example_key!r}: {group.example_reason}")
    if result.payloads:
        lines += ["", f"first {len(result.payloads)} of {sent:,} messages (sentAt is added at send time):"]
        for message_key, message, size in result.payloads:
            lines.append(f"--- key {message_key!r}, {size:,} bytes")
            lines.append(orjson.dumps(message, option=orjson.OPT_INDENT_2).decode())
    elif sent and limit == 0:
        lines += ["", "(--limit 0: no payloads shown)"]
    lines.append(f"\n{result.seconds:.2f} s")
    return "\n".join(lines)

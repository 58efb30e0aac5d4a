"""Chunks: rows on their way from planner to sender, one SQS message each."""

from __future__ import annotations

import base64
import gzip
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson

FORMAT_VERSION = 2
"""2: each row starts with its key text and messageId, written by the planner (1 carried model values only)."""
KEY_AT, MESSAGE_ID_AT, VALUES_AT = 0, 1, 2
"""Where a chunk row keeps its key text, its messageId, and the model's values (in ``columns`` order)."""
GZIP_PREFIX = "gz:"
COMPRESS_OVER_BYTES = 2_048
ROW_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Chunk:
    """A self-contained unit of work: the sync and destination it belongs to, and its rows.

    The sync and destination travel with the rows so a sender maps them exactly as planned,
    even if someone edits the sync while the run is in flight. Each row is ``[key text, messageId,
    *values]``; ``columns`` names the values.
    """

    run_id: str
    number: int
    sync: dict[str, Any]
    destination: dict[str, Any]
    columns: list[str]
    rows: list[list[Any]]


def encode_value(value: Any) -> Any:
    """orjson ``default``: the warehouse types orjson does not know, as JSON Segment accepts.

    Decimals become numbers when the number prints back exactly (money stays 12.34), else strings,
    so no digit is ever lost to a float. Timestamps become ISO-8601 in UTC (naive ones are taken as
    UTC, as warehouses store them).
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        as_float = float(value)
        return as_float if math.isfinite(as_float) and Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialize a value of type {type(value).__name__}")


def dump_row(row: Iterable[Any]) -> bytes:
    """Serialize one warehouse row; raises TypeError for a value no JSON can carry.

    Integers past 64 bits (NUMBER(38,0), HUGEINT ids) travel as strings, like long decimals.
    """
    values = list(row)
    try:
        return orjson.dumps(values, default=encode_value, option=ROW_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise TypeError(str(exc)) from None
        wide = [str(v) if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX else v for v in values]
        return orjson.dumps(wide, default=encode_value, option=ROW_OPTIONS)


def encode(run_id: str, number: int, header: bytes, row_bytes: list[bytes]) -> str:
    """Assemble a chunk body from pre-serialized rows; gzip + base64 when that is smaller."""
    raw = b"".join(
        (
            b'{"v":',
            str(FORMAT_VERSION).encode(),
            b',"run":',
            orjson.dumps(run_id),
            b',"n":',
            str(number).encode(),
            b",",
            header,
            b',"rows":[',
            b",".join(row_bytes),
            b"]}",
        )
    )
    if len(raw) > COMPRESS_OVER_BYTES:
        packed = GZIP_PREFIX + base64.b64encode(gzip.compress(raw, compresslevel=1)).decode()
        if len(packed) < len(raw):
            return packed
    return raw.decode()


def header(sync: dict[str, Any], destination: dict[str, Any], columns: list[str]) -> bytes:
    """The part of every chunk of a run that does not change: sync, destination, columns."""
    return orjson.dumps({"sync": sync, "dest": destination, "cols": columns})[1:-1]


def decode(body: str) -> Chunk:
    """Parse a chunk body (either form); raises ValueError on anything that is not a chunk."""
    try:
        raw = gzip.decompress(base64.b64decode(body[len(GZIP_PREFIX) :])) if body.startswith(GZIP_PREFIX) else body
        data = orjson.loads(raw)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a segsync chunk: {type(exc).__name__}") from None
    if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
        raise ValueError("not a segsync chunk (unknown format version)")
    try:
        return Chunk(
            run_id=data["run"],
            number=data["n"],
            sync=data["sync"],
            destination=data["dest"],
            columns=data["cols"],
            rows=data["rows"],
        )
    except KeyError as exc:
        raise ValueError(f"not a segsync chunk: no {exc.args[0]!r}") from None


@dataclass
class Chunker:
    """Cuts a stream of serialized rows into chunk bodies bounded by rows and encoded bytes."""

    run_id: str
    header: bytes
    max_rows: int
    max_body_bytes: int
    max_raw_bytes: int = 4 * 1024 * 1024
    number: int = 0

    def chunks(self, rows: Iterable[bytes]) -> Iterator[tuple[int, int, str]]:
        """Yield ``(chunk number, row count, body)``; each body fits ``max_body_bytes``."""
        pending: list[bytes] = []
        size = 0
        for row in rows:
            pending.append(row)
            size += len(row) + 1
            if len(pending) >= self.max_rows or size >= self.max_raw_bytes:
                yield from self._emit(pending)
                pending, size = [], 0
        if pending:
            yield from self._emit(pending)

    def _emit(self, rows: list[bytes]) -> Iterator[tuple[int, int, str]]:
        """Encode ``rows``; halve them until each half fits (a single row always fits: see planner)."""
        self.number += 1
        body = encode(self.run_id, self.number, self.header, rows)
        if len(body.encode()) <= self.max_body_bytes or len(rows) == 1:
            yield self.number, len(rows), body
            return
        self.number -= 1
        middle = len(rows) // 2
        yield from self._emit(rows[:middle])
        yield from self._emit(rows[middle:])

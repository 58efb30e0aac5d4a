"""Rows → Segment messages: identify for User syncs, track for Track syncs, or a rejection."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from segsync import __version__
from segsync.config import Source, TrackSync, UserSync, Value
from segsync.errors import ConfigError
from segsync.segment import MAX_MESSAGE_BYTES
from segsync.store import Rejection

SEGSYNC_NAMESPACE = uuid.UUID("6f1d7c1e-3b5a-5e0b-9a57-5e6d5c0a1b2f")
LIBRARY_CONTEXT = {"library": {"name": "segsync", "version": __version__}}
EPOCH_MS_THRESHOLD = 100_000_000_000


@dataclass(frozen=True)
class Mapped:
    """A message ready for a batch: its row key and its serialized JSON."""

    key: str
    body: bytes


def sync_namespace(sync_name: str) -> uuid.UUID:
    """Each sync's messageIds live in their own namespace, so two syncs never collide."""
    return uuid.uuid5(SEGSYNC_NAMESPACE, sync_name)


def column_index(columns: list[str], sync_name: str) -> Callable[[str, str], int]:
    """Resolve a configured column to its position, exactly or else case-insensitively.

    Snowflake upper-cases unquoted identifiers, so ``user_id`` in a sync finds ``USER_ID``.
    """
    exact = {name: i for i, name in enumerate(columns)}
    folded: dict[str, int | None] = {}
    for i, name in enumerate(columns):
        folded[name.lower()] = None if name.lower() in folded else i

    def find(column: str, field: str) -> int:
        if column in exact:
            return exact[column]
        if column.lower() in folded and folded[column.lower()] is None:
            raise ConfigError(
                f"sync '{sync_name}' field '{field}': column '{column}' matches several model columns "
                "that differ only in case; use the exact name"
            )
        position = folded.get(column.lower())
        if position is None:
            raise ConfigError(
                f"sync '{sync_name}' field '{field}': column '{column}' is not in the model's columns "
                f"({', '.join(columns)})"
            )
        return position

    return find


def _getter(source: Source, find: Callable[[str, str], int], field: str) -> Callable[[list[Any]], Any]:
    if isinstance(source, Value):
        constant = source.value
        return lambda row: constant
    position = find(source, field)
    return lambda row: row[position]


class Mapper:
    """Compiled once per chunk: column positions resolved, so each row costs only lookups."""

    def __init__(self, sync: UserSync | TrackSync, columns: list[str]) -> None:
        find = column_index(columns, sync.name)
        self.sync = sync
        self._namespace = sync_namespace(sync.name)
        self.key_position = find(sync.key, "key")
        if isinstance(sync, UserSync):
            self._fields = [(name, _getter(src, find, f"traits.{name}")) for name, src in sync.traits.items()]
            self._map = self._identify
        else:
            self._fields = [
                (name, _getter(src, find, f"properties.{name}")) for name, src in sync.properties.items()
            ]
            self._event = _getter(sync.event, find, "event")
            self._user_id = find(sync.user_id, "user_id") if sync.user_id else None
            self._anonymous_id = find(sync.anonymous_id, "anonymous_id") if sync.anonymous_id else None
            self._timestamp = find(sync.timestamp, "timestamp") if sync.timestamp else None
            self._map = self._track

    def map(self, row: list[Any]) -> Mapped | Rejection:
        """Map one row; anything Segment would drop or refuse becomes a Rejection with a reason."""
        raw_key = row[self.key_position]
        if raw_key is None:
            return Rejection(None, "key", f"key column '{self.sync.key}' is null")
        key = as_id(raw_key)
        if not key.strip():
            return Rejection(key, "key", f"key column '{self.sync.key}' is empty")
        result = self._map(key, row)
        if isinstance(result, Rejection):
            return result
        try:
            body = orjson.dumps(result)
        except orjson.JSONEncodeError as exc:
            return Rejection(key, "message", f"cannot serialize: {exc}")
        if len(body) > MAX_MESSAGE_BYTES:
            return Rejection(key, "message", f"message is {len(body):,} bytes, over Segment's 32 KB limit")
        return Mapped(key, body)

    def _collect(self, row: list[Any]) -> dict[str, Any]:
        return {name: value for name, get in self._fields if (value := get(row)) is not None}

    def _identify(self, key: str, row: list[Any]) -> dict[str, Any]:
        traits = self._collect(row)
        digest = hashlib.blake2b(
            orjson.dumps(traits, option=orjson.OPT_SORT_KEYS), digest_size=16
        ).hexdigest()
        return {
            "type": "identify",
            self.sync.key_field: key,
            "traits": traits,
            "context": LIBRARY_CONTEXT,
            "messageId": f"segsync-{uuid.uuid5(self._namespace, f'identify:{key}:{digest}')}",
        }

    def _track(self, key: str, row: list[Any]) -> dict[str, Any] | Rejection:
        event = self._event(row)
        if not isinstance(event, str) or not event.strip():
            return Rejection(key, "event", "event name is missing or empty")
        message: dict[str, Any] = {"type": "track", "event": event}
        for field, position in (("userId", self._user_id), ("anonymousId", self._anonymous_id)):
            if (
                position is not None
                and (value := row[position]) is not None
                and (text := as_id(value)).strip()
            ):
                message[field] = text
        if "userId" not in message and "anonymousId" not in message:
            return Rejection(key, "userId", "both userId and anonymousId are null or empty")
        if self._timestamp is not None:
            value = row[self._timestamp]
            if value is None:
                # Segment would stamp it with the receive time: wrong for a backfill, so say so instead.
                return Rejection(key, "timestamp", f"timestamp column '{self.sync.timestamp}' is null")
            parsed = parse_timestamp(value)
            if parsed is None:
                return Rejection(key, "timestamp", f"cannot read {value!r} as a timestamp")
            message["timestamp"] = parsed
        message["properties"] = self._collect(row)
        message["context"] = LIBRARY_CONTEXT
        message["messageId"] = f"segsync-{uuid.uuid5(self._namespace, f'track:{key}')}"
        return message


def as_id(value: Any) -> str:
    """Segment ids are strings: a numeric key 42 becomes "42"."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def parse_timestamp(value: Any) -> str | None:
    """ISO strings, epoch seconds or milliseconds → ISO-8601 UTC; None when unreadable.

    A timezone-naive timestamp is taken as UTC, as warehouses usually store it.
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            seconds = value / 1000 if abs(value) >= EPOCH_MS_THRESHOLD else value
            moment = datetime.fromtimestamp(seconds, tz=UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def source_columns(sync: UserSync | TrackSync, columns: list[str]) -> list[str]:
    """The model columns whose values shape this sync's messages: the row hash covers exactly these.

    A change in any other column sends nothing; a change in one of these re-sends the row.
    """
    find = column_index(columns, sync.name)
    sources: list[Source] = [sync.key]
    if isinstance(sync, UserSync):
        sources += list(sync.traits.values())
    else:
        sources += [sync.event, *sync.properties.values()]
        sources += [c for c in (sync.user_id, sync.anonymous_id, sync.timestamp) if c]
    positions = sorted({find(s, "mapping") for s in sources if not isinstance(s, Value)})
    return [columns[p] for p in positions]


def mapping_fingerprint(sync: UserSync | TrackSync) -> str:
    """A short digest of everything that shapes a message but is not a column value.

    It seeds the row hash, so changing a mapping (a renamed trait, a new constant) re-sends every row.
    """
    shape = sync.model_dump(
        mode="json", exclude={"name", "enabled", "source", "destination", "model", "schedule"}
    )
    return hashlib.blake2b(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()

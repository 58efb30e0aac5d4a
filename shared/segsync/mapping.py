"""Rows → Segment messages: identify (User), group (Group) and track (Track), or a rejection."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from math import isfinite
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from segsync import __version__
from segsync.changes import CHANGE_COLUMN, EVENT_OF, FOUND_AT_COLUMN, REMOVED, sends_changes, tracks_removals
from segsync.chunks import KEY_AT, MESSAGE_ID_AT, VALUES_AT
from segsync.config import AnySync, Column, GroupSync, Source, TrackSync, UserSync, Value, format_target
from segsync.errors import ConfigError
from segsync.segment import MAX_MESSAGE_BYTES
from segsync.store import Rejection
from segsync.warehouse.dialect import FLOAT_EXACT_INTEGERS

SEGSYNC_NAMESPACE = uuid.UUID("6f1d7c1e-3b5a-5e0b-9a57-5e6d5c0a1b2f")
LIBRARY = {"name": "segsync", "version": __version__}
LIBRARY_CONTEXT = {"library": LIBRARY}
EPOCH_MS_THRESHOLD = 100_000_000_000
MAX_PROPERTIES = 10_000
MAX_MESSAGE_ID_CHARS = 100
INTERNAL_COLUMN_PREFIX = "__segsync"
"""Columns segsync adds to a model's query (key counts, hashes): never traits or properties."""
SHOWN_VALUE_CHARS = 60


class Mapped(NamedTuple):
    """A message ready for a batch: its row key and its serialized JSON (a tuple: made once per row)."""

    key: str
    body: bytes


@cache
def sync_namespace(sync_name: str) -> uuid.UUID:
    """Each sync's messageIds live in their own namespace, so two syncs never collide."""
    return uuid.uuid5(SEGSYNC_NAMESPACE, sync_name)


def message_id(namespace: bytes, name: str) -> str:
    """``segsync-`` + ``uuid5(namespace, name)``, built straight from SHA-1.

    The same id as ``uuid.uuid5`` (a test pins it) at a third of the cost: this runs once per message.
    """
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    hexed = digest.hex()
    return f"segsync-{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def row_message_id(
    sync: AnySync,
    key: str,
    previous_hash: str | None,
    row_hash: str | None,
    resync_run: str | None,
    *,
    change: str | None = None,
    run_id: str | None = None,
) -> str:
    """A row's messageId: the same for every resend of one planned row, new for every new version.

    Track: the event key alone (an event is one event, even in a full resync). Identify and group: the key,
    the hash delivered last and the new hash, so a redelivered chunk or a re-planned undelivered run keeps
    its ids (Segment drops the copies) while a change never reuses an older message's id, even when the
    content comes back to what it was (A → B → A is three ids). A full resync is a deliberate resend: its
    ids are scoped to that run (``resync_run``), or Segment would drop them as copies of the last delivery.

    A key can leave the model and come back as it was, so where removals are sent (``change``, ``run_id``:
    the run planning the row) a message that a returning key could repeat is scoped to its run: a change
    event stamped with the run's time (every removal, and added or changed rows without a timestamp column),
    a clearing identify or group, and a key such a sync sends as new. Those are the same for every resend
    within the run; the next run re-plans what this one did not commit under ids of its own.
    """
    namespace = sync_namespace(sync.name).bytes
    if isinstance(sync, TrackSync):
        if sends_changes(sync):
            stamp = run_id if change == REMOVED or sync.timestamp is None else ""
            return message_id(
                namespace, f"{EVENT_OF[change]}:{key}:{previous_hash or ''}:{row_hash or ''}:{stamp or ''}"
            )
        return message_id(namespace, f"track:{key}")
    kind = MESSAGE_TYPES[sync.object]
    if change == REMOVED:
        return message_id(namespace, f"{kind}:{key}:removed {run_id or ''}:{previous_hash}")
    if resync_run:
        since = f"resync {resync_run}"
    elif previous_hash is None and tracks_removals(sync):
        since = f"new {run_id or ''}"
    else:
        since = previous_hash or ""
    return message_id(namespace, f"{kind}:{key}:{since}:{row_hash}")


MESSAGE_TYPES = {"user": "identify", "group": "group", "track": "track"}


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


# --- what a sync reads --------------------------------------------------------------------------------


def column_references(sync: AnySync) -> Iterator[tuple[str, str]]:
    """Every (sync field, column) the sync names: key, identities, event, time, and mapping sources."""
    yield "key", sync.key
    if isinstance(sync, GroupSync) and sync.group_id:
        yield "group_id", sync.group_id
    if isinstance(sync, TrackSync | GroupSync):
        for name in ("user_id", "anonymous_id"):
            if column := getattr(sync, name):
                yield name, column
    if isinstance(sync, TrackSync):
        if sync.event is not None and not isinstance(sync.event, Value):
            yield "event", _column_of(sync.event)
        if sync.timestamp:
            yield "timestamp", sync.timestamp
    for field_name, _, source in sync.targets():
        if not isinstance(source, Value):
            yield field_name, _column_of(source)


def _column_of(source: str | Column) -> str:
    return source.column if isinstance(source, Column) else source


def source_columns(sync: AnySync, columns: list[str]) -> list[str]:
    """The model columns whose values shape this sync's messages: the row hash covers exactly these.

    A change in any other column sends nothing; a change in one of these re-sends the row. With
    Sync All Properties every column shapes the message (a new column too).
    """
    if sync.sync_all_properties:
        return [c for c in columns if not c.startswith(INTERNAL_COLUMN_PREFIX)]
    find = column_index(columns, sync.name)
    positions = sorted({find(column, field) for field, column in column_references(sync)})
    return [columns[p] for p in positions]


MAPPING_RULES_VERSION = 2
"""Bumped when the same config maps the same row to different messages (re-sends every row once)."""
NOT_MAPPING_FIELDS = {
    "name", "enabled", "source", "destination", "model", "schedule", "cursor",
    "events", "on_removal", "max_removed_share",
}  # fmt: skip
"""Event names shape no row's values: renaming one sends nothing again (and neither does a removal setting)."""


def mapping_fingerprint(sync: AnySync) -> str:
    """A short digest of everything that shapes a message but is not a column value.

    It seeds the row hash, so changing a mapping (a renamed trait, a new constant, another null rule
    or normalization) re-sends every row.
    """
    shape = sync.model_dump(mode="json", exclude=NOT_MAPPING_FIELDS)
    shape["__rules"] = MAPPING_RULES_VERSION
    return hashlib.blake2b(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


# --- Sync All Properties: column names → trait and property names ------------------------------------

_SEPARATORS = re.compile(r"[\W_]+")


def words(name: str) -> list[str]:
    """A column name's words: ``lifetime_value``, ``LIFETIME_VALUE``, ``lifetimeValue`` → lifetime, value.

    Separators are anything but letters and digits; a capital starts a word after a lower-case letter
    or a digit, and before a lower-case letter in a run of capitals (``HTTPServer`` → HTTP, Server).
    """
    found = []
    for chunk in _SEPARATORS.split(name):
        start = 0
        for i in range(1, len(chunk)):
            previous, current = chunk[i - 1], chunk[i]
            following = chunk[i + 1] if i + 1 < len(chunk) else ""
            if current.isupper() and (
                previous.islower() or previous.isdigit() or (previous.isupper() and following.islower())
            ):
                found.append(chunk[start:i])
                start = i
        if chunk:
            found.append(chunk[start:])
    return found


def normalize(name: str, style: str) -> str:
    """A column name in a normalization style; a name without letters or digits is kept as it is."""
    if style == "none":
        return name
    if style == "lowercase":
        return name.lower()
    parts = words(name)
    if not parts:
        return name
    if style == "snake_case":
        return "_".join(p.lower() for p in parts)
    if style == "camelCase":
        return parts[0].lower() + "".join(p.capitalize() for p in parts[1:])
    if style == "PascalCase":
        return "".join(p.capitalize() for p in parts)
    if style == "Title Case":
        return " ".join(p.capitalize() for p in parts)
    raise ValueError(f"unknown normalization {style!r}")


# --- the compiled mapper ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """One mapped value: where it goes inside its root object, and how to read it from a row."""

    path: tuple[str, ...]
    get: Callable[[list[Any]], Any]
    send_nulls: bool
    target: str
    column: str | None


@dataclass
class _Root:
    """How one message object (traits/properties, context, integrations) is filled, in override order."""

    bulk: list[tuple[str, int]] = field(default_factory=list)
    wholes: list[_Field] = field(default_factory=list)
    fields: list[_Field] = field(default_factory=list)


class Mapper:
    """Compiled once per chunk: column positions resolved, so each row costs only lookups.

    Rows are laid out as chunks carry them (``segsync.chunks``): key text, messageId, then the values of
    ``columns``. The key text and the messageId were written by the planner; the mapper never re-derives them.
    """

    def __init__(self, sync: AnySync, columns: list[str]) -> None:
        position = column_index(columns, sync.name)

        def find(column: str, field: str) -> int:
            return position(column, field) + VALUES_AT

        self.sync = sync
        self.columns = columns
        key_position = find(sync.key, "key")
        self._main = sync.OBJECT_FIELD
        self._bulk_send = sync.null_values == "send"
        self._roots = self._compile(sync, columns, find)
        self._flat_only = (
            not self._roots[self._main].bulk
            and not self._roots[self._main].wholes
            and all(len(f.path) == 1 for f in self._roots[self._main].fields)
            and not any(self._roots[r].wholes or self._roots[r].fields for r in ("context", "integrations"))
        )
        self._flat = [(f.path[0], f.get, f.send_nulls) for f in self._roots[self._main].fields]
        # Where removals are sent, a chunk row says its change kind (segsync.changes.ChunkValues).
        self._change = find(CHANGE_COLUMN, "change") if tracks_removals(sync) else None
        self._cleared_names = [
            *dict.fromkeys(f.path[0] for f in self._roots[self._main].fields),
            *(name for name, _ in self._roots[self._main].bulk),
        ]
        if isinstance(sync, UserSync):
            self._map = self._identify
        elif isinstance(sync, GroupSync):
            group_column = find(sync.group_column, "group_id")
            self._group_id = None if group_column == key_position else group_column
            self._identities = _identity_positions(sync, find)
            self._map = self._group
        else:
            self._found_at = None
            if sends_changes(sync):
                change, events = self._change, {kind: getattr(sync.events, e) for kind, e in EVENT_OF.items()}
                self._event = lambda row: events.get(row[change])
                self._found_at = find(FOUND_AT_COLUMN, "timestamp")
            else:
                self._event = _getter(sync.event, find, "event", False)[0]
            self._identities = _identity_positions(sync, find)
            self._timestamp = find(sync.timestamp, "timestamp") if sync.timestamp else None
            self._map = self._track

    def _compile(self, sync: AnySync, columns: list[str], find: Callable[[str, str], int]) -> dict[str, _Root]:
        roots = {self._main: _Root(), "context": _Root(), "integrations": _Root()}
        default_send = sync.null_values == "send"
        for field_name, path, source in sync.targets():
            get, send_nulls, column = _getter(source, find, field_name, default_send)
            mapped = _Field(path[1:], get, send_nulls, format_target(path), column)
            (roots[path[0]].wholes if len(path) == 1 else roots[path[0]].fields).append(mapped)
        for root in roots.values():
            root.fields.sort(key=lambda f: len(f.path))  # stable: a deeper path overrides its parent's value
        if sync.sync_all_properties:
            roots[self._main].bulk = _bulk_columns(sync, columns, find, self._main)
        return roots

    def map(self, row: list[Any]) -> Mapped | Rejection:
        """Map one chunk row; anything Segment would drop or refuse becomes a Rejection with a reason."""
        key = row[KEY_AT]
        if key is None:
            return Rejection(None, "key", f"key column '{self.sync.key}' is null")
        if not key.strip():
            return Rejection(key, "key", f"key column '{self.sync.key}' is empty")
        try:
            message = self._map(key, row)
            if isinstance(message, Rejection):
                return message
            body = orjson.dumps(message)
        except orjson.JSONEncodeError as exc:
            return Rejection(key, "message", f"cannot serialize: {exc}")
        count = len(message[self._main])
        if count > MAX_PROPERTIES:
            return Rejection(key, self._main, f"{count:,} {self._main}, over Segment's {MAX_PROPERTIES:,}")
        if len(message["messageId"]) > MAX_MESSAGE_ID_CHARS:
            return Rejection(key, "messageId", f"messageId is over {MAX_MESSAGE_ID_CHARS} characters")
        if len(body) > MAX_MESSAGE_BYTES:
            return Rejection(key, "message", f"message is {len(body):,} bytes, over Segment's 32 KB limit")
        return Mapped(key, body)

    # --- objects ----------------------------------------------------------------------------------

    def _objects(self, key: str, row: list[Any]) -> tuple[dict[str, Any], dict[str, Any]] | Rejection:
        """The main object (traits or properties) and the mapped extras (context, integrations).

        Override order, later wins: Sync All Properties columns, a whole-object column, then named
        fields and paths, shallow before deep.
        """
        if self._flat_only:
            # The common case, and the hot path: plain named fields. NaN/±Infinity checks are inline
            # (a function call per value would cost more than the rest of the loop).
            flat: dict[str, Any] = {}
            for name, get, send_nulls in self._flat:
                value = get(row)
                if value.__class__ is float and not isfinite(value):
                    value = None
                if value is not None or send_nulls:
                    flat[name] = value
            return flat, {}
        extras: dict[str, Any] = {}
        main: dict[str, Any] = {}
        for name, root in self._roots.items():
            obj: dict[str, Any] = {}
            for column_name, position in root.bulk:
                value = row[position]
                if value.__class__ is float and not isfinite(value):
                    value = None
                if value is not None or self._bulk_send:
                    obj[column_name] = value
            for whole in root.wholes:
                parsed = as_object(whole.get(row), whole.column)
                if isinstance(parsed, str):
                    return Rejection(key, whole.target, parsed)
                for name_in, value in (parsed or {}).items():
                    if value is not None or whole.send_nulls:
                        obj[name_in] = value
            for mapped in root.fields:
                value = _clean(mapped.get(row))
                if value is None and not mapped.send_nulls:
                    continue
                if len(mapped.path) == 1:
                    obj[mapped.path[0]] = value
                else:
                    _put(obj, mapped.path, value)
            if name == self._main:
                main = obj
            elif name == "integrations":
                for destination, setting in list(obj.items()):
                    if setting is None:
                        del obj[destination]
                    elif not isinstance(setting, bool | dict):
                        return Rejection(
                            key,
                            f"integrations.{destination}",
                            f"must be true, false or an options object, not {_show(setting)}",
                        )
                if obj:
                    extras["integrations"] = obj
            elif obj:
                obj.pop("library", None)  # context.library is segsync's
                if obj:
                    extras["context"] = obj
        return main, extras

    @staticmethod
    def _finish(message: dict[str, Any], extras: dict[str, Any], row: list[Any]) -> dict[str, Any]:
        context = extras.get("context")
        message["context"] = {"library": LIBRARY, **context} if context else LIBRARY_CONTEXT
        if "integrations" in extras:
            message["integrations"] = extras["integrations"]
        message["messageId"] = row[MESSAGE_ID_AT]
        return message

    # --- one builder per object -------------------------------------------------------------------

    def _identify(self, key: str, row: list[Any]) -> dict[str, Any] | Rejection:
        objects = self._objects(key, row)
        if isinstance(objects, Rejection):
            return objects
        traits, extras = objects
        if self._change is not None and row[self._change] == REMOVED:
            traits = self._cleared(row)
        message = {"type": "identify", self.sync.key_field: key, "traits": traits}
        return self._finish(message, extras, row)

    def _group(self, key: str, row: list[Any]) -> dict[str, Any] | Rejection:
        # The groupId is the key's own text, unless a column of its own holds it.
        if self._group_id is None:
            group_id: str | None = key
        else:
            raw = row[self._group_id]
            group_id = None if raw is None else as_id(raw)
        if group_id is None or not group_id.strip():
            column = self.sync.group_column
            return Rejection(key, "groupId", f"group id column '{column}' is null or empty")
        message: dict[str, Any] = {"type": "group", "groupId": group_id}
        missing = self._identify_by(message, row, key)
        if missing:
            return missing
        objects = self._objects(key, row)
        if isinstance(objects, Rejection):
            return objects
        message["traits"], extras = objects
        if self._change is not None and row[self._change] == REMOVED:
            message["traits"] = self._cleared(row)
        return self._finish(message, extras, row)

    def _cleared(self, row: list[Any]) -> dict[str, None]:
        """Every trait the sync sets, null: what ``on_removal: clear`` sends for a key that left the model.

        The named traits and Sync All Properties columns, and the keys of whole-object columns as they were
        last delivered (``row`` holds the removed key's last values).
        """
        names = list(self._cleared_names)
        for whole in self._roots[self._main].wholes:
            parsed = as_object(whole.get(row), whole.column)
            if isinstance(parsed, dict):
                names.extend(parsed)
        return dict.fromkeys(names)

    def _track(self, key: str, row: list[Any]) -> dict[str, Any] | Rejection:
        event = self._event(row)
        if not isinstance(event, str) or not event.strip():
            return Rejection(key, "event", "event name is missing or empty")
        message: dict[str, Any] = {"type": "track", "event": event}
        missing = self._identify_by(message, row, key)
        if missing:
            return missing
        position = self._timestamp
        if self._found_at is not None and (position is None or row[self._change] == REMOVED):
            # A change event's time: when the run found it, unless a column gives it (never for a removal).
            position = self._found_at
        if position is not None:
            value = row[position]
            if value is None:
                # Segment would stamp it with the receive time: wrong for a backfill, so say so instead.
                return Rejection(key, "timestamp", f"timestamp column '{self.sync.timestamp}' is null")
            parsed = parse_timestamp(value)
            if parsed is None:
                return Rejection(key, "timestamp", f"cannot read {_show(value)} as a timestamp")
            message["timestamp"] = parsed
        objects = self._objects(key, row)
        if isinstance(objects, Rejection):
            return objects
        message["properties"], extras = objects
        return self._finish(message, extras, row)

    def _identify_by(self, message: dict[str, Any], row: list[Any], key: str) -> Rejection | None:
        """Set userId and/or anonymousId from their columns; a row with neither is rejected."""
        for name, position in self._identities:
            if (value := row[position]) is not None and (text := as_id(value)).strip():
                message[name] = text
        if "userId" not in message and "anonymousId" not in message:
            return Rejection(key, "userId", "both userId and anonymousId are null or empty")
        return None


def _identity_positions(sync: TrackSync | GroupSync, find: Callable[[str, str], int]) -> list[tuple[str, int]]:
    pairs = (("userId", sync.user_id, "user_id"), ("anonymousId", sync.anonymous_id, "anonymous_id"))
    return [(name, find(column, field)) for name, column, field in pairs if column]


def _getter(
    source: Source, find: Callable[[str, str], int], field: str, default_send: bool
) -> tuple[Callable[[list[Any]], Any], bool, str | None]:
    """(read the value from a row, send it when null?, the column or None for a constant)."""
    if isinstance(source, Value):
        constant = source.value
        return (lambda row: constant), True, None  # a constant null is written on purpose: send it
    column = _column_of(source)
    nulls = source.nulls if isinstance(source, Column) and source.nulls else None
    send = default_send if nulls is None else nulls == "send"
    return itemgetter(find(column, field)), send, column


def _bulk_columns(
    sync: AnySync, columns: list[str], find: Callable[[str, str], int], main: str
) -> list[tuple[str, int]]:
    """Sync All Properties: every column the sync does not use elsewhere, under its normalized name."""
    used = {find(column, field) for field, column in column_references(sync)}
    named: dict[str, str] = {}
    bulk = []
    for position, column in enumerate(columns, start=VALUES_AT):
        if position in used or column.startswith(INTERNAL_COLUMN_PREFIX):
            continue
        name = normalize(column, sync.normalization)
        if name in named:
            raise ConfigError(
                f"sync '{sync.name}' field 'normalization': columns '{named[name]}' and '{column}' both "
                f"become {main} '{name}' ({sync.normalization}); rename one in the model or map one "
                "explicitly"
            )
        named[name] = column
        bulk.append((name, position))
    return bulk


# --- values -------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """NaN and ±Infinity are no value (JSON has none of them): they follow the null rule."""
    if value.__class__ is float and not math.isfinite(value):
        return None
    return value


def _put(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set a nested path, copying the dicts on the way so a row's own objects are never changed."""
    for part in path[:-1]:
        child = obj.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        obj[part] = child
        obj = child
    obj[path[-1]] = value


def _show(value: Any) -> str:
    """A value quoted in a rejection reason, cut short: reasons are kept, whole rows are not."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 1] + "…"


_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def as_object(value: Any, column: str | None) -> dict[str, Any] | str | None:
    """A whole-object source (a STRUCT/MAP/OBJECT column, or VARIANT JSON text) → dict, None, or why not."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return f"column '{column}' is not valid JSON, so it cannot fill an object"
        if value is None:
            return None
    if isinstance(value, dict):
        return value
    return f"column '{column}' holds {_KINDS.get(type(value), type(value).__name__)}, not a JSON object"


def as_id(value: Any) -> str:
    """An id column's value (not the key's, which the warehouse writes) as the string Segment wants.

    The warehouse's rules for key texts, applied to what a chunk carries: 42 → "42", and an integral
    float (a DECIMAL(18,0) id travels as 7.0) → "7", as every other tool writes it.
    """
    if isinstance(value, str):
        return value
    if value.__class__ is float and isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < FLOAT_EXACT_INTEGERS else repr(value)
    return orjson.dumps(value).decode()


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

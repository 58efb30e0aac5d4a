"""Segment's HTTP Tracking API spec, read independently of segsync's mapper, for checking payloads.

Written from /work/shared/reference/segment-http-api.md (and Segment's public docs): what a message
of each call type must hold for Segment to keep it, and the limits it must stay within. It shares no
code with ``segsync.mapping`` on purpose: a mapper bug must not be able to vouch for itself.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

MAX_MESSAGE_BYTES = 32 * 1024
MAX_MESSAGE_ID_CHARS = 100
MAX_PROPERTIES = 10_000

COMMON_FIELDS = frozenset(
    {"type", "userId", "anonymousId", "context", "integrations", "timestamp", "messageId", "sentAt"}
)
TYPE_FIELDS = {
    "identify": frozenset({"traits"}),
    "track": frozenset({"event", "properties"}),
    "group": frozenset({"groupId", "traits"}),
}
ADDED_ON_RECEIPT = frozenset({"receivedAt"})
"""What an endpoint adds to a message it records (the capture endpoint, like Segment, adds receivedAt)."""
TIME_FIELDS = ("timestamp", "sentAt", "receivedAt")


def problems(message: Any, *, received: bool = False) -> list[str]:
    """Everything wrong with one message; empty when Segment would accept and keep it.

    Args:
        message: the message as JSON data.
        received: the message was recorded by an endpoint, so ``receivedAt`` (and the batch's
            ``sentAt``) may be on it; they do not count toward the size limit.
    """
    if not isinstance(message, dict):
        return [f"a message is a JSON object, not {type(message).__name__}"]
    kind = message.get("type")
    if kind not in TYPE_FIELDS:
        return [f"type {kind!r} is not one of {sorted(TYPE_FIELDS)}"]
    found: list[str] = []
    allowed = COMMON_FIELDS | TYPE_FIELDS[kind] | (ADDED_ON_RECEIPT if received else frozenset())
    found += [f"unexpected top-level field {name!r}" for name in sorted(set(message) - allowed)]
    found += _identity(message)
    found += _message_id(message.get("messageId"))
    found += [p for name in TIME_FIELDS if name in message for p in _iso_time(name, message[name])]
    for name in ("context", "integrations", "traits", "properties"):
        if name in message and not isinstance(message[name], dict):
            found.append(f"{name} must be an object, not {type(message[name]).__name__}")
    if isinstance(message.get("integrations"), dict):
        found += [
            f"integrations.{name} must be true, false or an object, not {value!r}"
            for name, value in message["integrations"].items()
            if not isinstance(value, bool | dict)
        ]
    if kind == "track" and not (isinstance(message.get("event"), str) and message["event"].strip()):
        found.append("a track needs a non-empty event name")
    if kind == "group" and not (isinstance(message.get("groupId"), str) and message["groupId"].strip()):
        found.append("a group needs a non-empty groupId")
    for name in ("traits", "properties"):
        if isinstance(message.get(name), dict) and len(message[name]) > MAX_PROPERTIES:
            found.append(f"{len(message[name])} {name}: over {MAX_PROPERTIES}")
    found += _plain_json(message, "")
    if not found:
        sent = {k: v for k, v in message.items() if not (received and k in ("receivedAt", "sentAt"))}
        size = len(orjson.dumps(sent))
        if size > MAX_MESSAGE_BYTES:
            found.append(f"{size} bytes: over {MAX_MESSAGE_BYTES}")
    return found


def _identity(message: dict[str, Any]) -> list[str]:
    present = [name for name in ("userId", "anonymousId") if name in message]
    if not present:
        return ["neither userId nor anonymousId: Segment drops it after answering 200"]
    return [
        f"{name} must be a non-empty string, not {message[name]!r}"
        for name in present
        if not (isinstance(message[name], str) and message[name].strip())
    ]


def _message_id(value: Any) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"messageId must be a non-empty string, not {value!r}"]
    if len(value) > MAX_MESSAGE_ID_CHARS:
        return [f"messageId is {len(value)} characters: over {MAX_MESSAGE_ID_CHARS}"]
    return []


def _iso_time(name: str, value: Any) -> list[str]:
    if not isinstance(value, str):
        return [f"{name} must be an ISO-8601 string, not {value!r}"]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return [f"{name} {value!r} is not ISO-8601"]
    if moment.tzinfo is None:
        return [f"{name} {value!r} has no offset: ambiguous"]
    return []


def _plain_json(value: Any, where: str) -> list[str]:
    """Only JSON's own values: string keys, finite numbers (NaN and Infinity are not JSON)."""
    if isinstance(value, dict):
        found = [f"{where or '(message)'}: key {k!r} is not a string" for k in value if not isinstance(k, str)]
        for k, v in value.items():
            found += _plain_json(v, f"{where}.{k}" if where else str(k))
        return found
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _plain_json(v, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where}: {value} is not a JSON number"]
    if value is None or isinstance(value, str | bool | int | float):
        return []
    return [f"{where}: {type(value).__name__} is not a JSON value"]

"""DynamoDB capacity units of the calls a scenario makes, from the sizes of the items they touch.

moto answers ``ConsumedCapacity`` with fixed numbers, so the bench counts units as DynamoDB bills them
on demand: a write unit per started KB of the item written (the larger of its size before and after),
twice that inside a transaction (a ConditionCheck included), a read unit per started 4 KB of what a
strongly consistent read returns (half of one when eventually consistent, at least half a unit a
call). Item sizes follow DynamoDB's rules (attribute names count, numbers take about one byte per two
digits). A write that does not carry its whole item (UpdateItem, DeleteItem, the parts of a
transaction) is sized by reading the item before and after it with a client of its own, whose calls
this counter does not see; the time those reads take is kept apart (``side_seconds``) so it can be
left out of the measured handlers. Not counted: the item a PutItem replaces (segsync's puts create
items), the full item behind a projected Query (only the syncs table's name listing projects).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
KEYED = ("Update", "Delete", "ConditionCheck")


def value_bytes(value: dict[str, Any]) -> int:
    """The size DynamoDB counts for one attribute value in its wire format (``{"S": ...}``)."""
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(value_bytes({"N": n}) for n in data)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in data)
    if kind == "L":
        return 3 + sum(value_bytes(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_bytes(v) + 1 for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_bytes(item: dict[str, Any] | None) -> int:
    """An item's size: each attribute's name and value."""
    return sum(len(name.encode()) + value_bytes(value) for name, value in (item or {}).items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


class Capacity:
    """Write and read units by operation, for the DynamoDB calls seen by ``before``/``after`` hooks."""

    def __init__(self) -> None:
        self.write_units: Counter[str] = Counter()
        self.read_units: Counter[str] = Counter()
        self.side_seconds = 0.0
        self._clients: dict[str, Any] = {}

    def before(self, operation: str, request: dict[str, Any], context: dict[str, Any]) -> None:
        """Remember the sizes of the items a write will change, before it changes them."""
        body = _json(request.get("body"))
        keyed = _keyed(operation, body)
        if keyed:
            url = request.get("url", "")
            context["bench_capacity"] = (url, keyed, [self._size(url, table, key) for table, key, _ in keyed])

    def after(self, operation: str, status: int, request_body: Any, response: bytes, context: dict[str, Any]) -> None:
        body = _json(request_body)
        if operation in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"):
            self.write_units[operation] += self._written(operation, status, body, context)
        elif operation == "BatchWriteItem":
            for requests in body.get("RequestItems", {}).values():
                for entry in requests:
                    put = entry.get("PutRequest", {}).get("Item")
                    self.write_units[operation] += write_units(item_bytes(put))
        elif operation in ("GetItem", "Query", "Scan") and status < 300:
            answer = _json(response)
            items = [answer["Item"]] if "Item" in answer else answer.get("Items", [])
            size = sum(item_bytes(item) for item in items)
            self.read_units[operation] += read_units(size, bool(body.get("ConsistentRead")))

    def _written(self, operation: str, status: int, body: dict[str, Any], context: dict[str, Any]) -> int:
        if operation == "PutItem":
            return write_units(item_bytes(body.get("Item")))
        url, keyed, before = context.get("bench_capacity", ("", [], []))
        units = 0
        for (table, key, kind), old in zip(keyed, before, strict=True):
            new = self._size(url, table, key) if kind == "Update" and status < 300 else 0
            units += write_units(max(old, new))
        if operation == "TransactWriteItems":
            puts = [item["Put"]["Item"] for item in body.get("TransactItems", []) if "Put" in item]
            units += sum(write_units(item_bytes(item)) for item in puts)
            units *= 2
        return units

    def _size(self, url: str, table: str, key: dict[str, Any]) -> int:
        started = time.perf_counter()
        try:
            item = self._client(url).get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        finally:
            self.side_seconds += time.perf_counter() - started
        return item_bytes(item)

    def _client(self, url: str) -> Any:
        """A low-level client of its own botocore session: its calls raise no hooks and return wire-format items."""
        parts = urlsplit(url)
        endpoint = f"{parts.scheme}://{parts.netloc}"
        if endpoint not in self._clients:
            import botocore.session

            self._clients[endpoint] = botocore.session.get_session().create_client("dynamodb", endpoint_url=endpoint)
        return self._clients[endpoint]

    def snapshot(self) -> dict[str, Any]:
        return {
            "write_units": dict(sorted(self.write_units.items())),
            "read_units": {k: round(v, 1) for k, v in sorted(self.read_units.items())},
        }


def _keyed(operation: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(table, key, kind) of each item a write changes without carrying it whole."""
    if operation in ("UpdateItem", "DeleteItem"):
        return [(body["TableName"], body["Key"], operation.removesuffix("Item"))]
    if operation == "TransactWriteItems":
        return [
            (item[kind]["TableName"], item[kind]["Key"], kind)
            for item in body.get("TransactItems", [])
            for kind in KEYED
            if kind in item
        ]
    return []


def _json(body: Any) -> dict[str, Any]:
    if not body:
        return {}
    return json.loads(body)

"""What the scenario processes share: the bench sync, clean resource readings, timers and result files.

Only the standard library is imported at module level: the orchestrator imports this module too and
must stay small, because a child's ``ru_maxrss`` starts at its parent's high-water mark (see
``peak_rss_mb``).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import resource
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

SYNC_NAME = "bench-users"
WRITE_KEY = "bench-write-key"
KEY_COLUMN = "user_id"
UNPACED = 1_000_000_000
"""events/s for the capture endpoint: no Segment workspace budget to respect, so no pacing sleeps."""
PLAN_AHEAD_DEFAULT_S = 300
"""The planner's PLAN_AHEAD_SECONDS unless the environment says otherwise (segsync.settings)."""

# A user id and ten traits of mixed types: four strings, an int, a decimal, two booleans, two timestamps.
# Plain arithmetic on the demo's row number (no random()), so every machine gets the same rows.
MODEL = """
SELECT user_id, email, name, plan, country,
       n * 37 % 500                                   AS logins,
       lifetime_value,
       is_active,
       n % 3 = 0                                      AS newsletter,
       created_at,
       created_at + to_seconds(n * 104729 % 2592000)  AS last_seen_at
FROM (SELECT *, CAST(substr(user_id, 6) AS BIGINT) AS n FROM users)
""".strip()
TRAITS = {
    "email": "email",
    "name": "name",
    "plan": "plan",
    "country": "country",
    "logins": "logins",
    "lifetimeValue": "lifetime_value",
    "isActive": "is_active",
    "newsletter": "newsletter",
    "createdAt": "created_at",
    "lastSeenAt": "last_seen_at",
}
# 1% of users, chosen by the number in their id; 7 (not 0) keeps clear of 'user_100000', whose id the
# demo builder gives twice at 1,000,000 users (lpad to 6 digits truncates 1000000).
CHANGE_SQL = "UPDATE users SET lifetime_value = lifetime_value + 1 WHERE CAST(substr(user_id, 6) AS BIGINT) % 100 = 7"


def project_data(warehouse: Path, endpoint: str, events_per_second: int = UNPACED) -> dict[str, Any]:
    """The bench project file, as data: one User sync of the model above to one Segment destination."""
    return {
        "version": 1,
        "connections": {
            "warehouse": {"type": "duckdb", "path": str(warehouse)},
            "segment": {
                "type": "segment",
                "endpoint": endpoint,
                "write_key": {"env": "SEGMENT_WRITE_KEY"},
                "events_per_second": events_per_second,
            },
        },
        "syncs": [
            {
                "name": SYNC_NAME,
                "object": "user",
                "source": "warehouse",
                "destination": "segment",
                "model": MODEL,
                "key": KEY_COLUMN,
                "key_field": "userId",
                "traits": TRAITS,
            }
        ],
    }


def project(warehouse: Path, endpoint: str, events_per_second: int = UNPACED) -> Any:
    """The bench project, validated by segsync's own model (imported here: children only)."""
    from segsync.config import Project

    os.environ.setdefault("SEGMENT_WRITE_KEY", WRITE_KEY)
    return Project.model_validate(project_data(warehouse, endpoint, events_per_second))


def _proc_status_kb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB.

    Linux carries the parent's high-water mark into ``ru_maxrss`` across fork + exec, so a small child
    of a big parent would report the parent's peak. ``VmHWM`` belongs to this process's address space
    only; ``ru_maxrss`` is the fallback where /proc is missing, and both are reported.
    """
    hwm = _proc_status_kb("VmHWM")
    return hwm / 1024 if hwm is not None else ru_maxrss_mb()


def rss_mb() -> float:
    """Resident memory now, in MB."""
    current = _proc_status_kb("VmRSS")
    return current / 1024 if current is not None else ru_maxrss_mb()


def memory() -> dict[str, float]:
    return {"peak_rss_mb": round(peak_rss_mb(), 1), "ru_maxrss_mb": round(ru_maxrss_mb(), 1)}


def write_result(path: str | Path, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


class Timers:
    """Wall time spent inside chosen functions, by label: wrappers installed by the bench, not the library.

    A wrapped generator is timed per ``next()``, so a consumer's own work in between is not counted.
    A name that no longer exists (the library moved on) is listed in ``missing`` instead of failing.
    Nested calls with the same label count once (the outermost).
    """

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.missing: list[str] = []
        self._depth: Counter[str] = Counter()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = inspect.getattr_static(owner, name, None)
        if original is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return
        if isinstance(original, staticmethod | classmethod):
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{name} (static)")
            return
        setattr(owner, name, self.timed(original, label))

    def wrap_public(self, cls: type, label: str) -> list[str]:
        """Time every public method a class defines (whatever the adapter grows), plus its constructor."""
        names = [n for n, v in vars(cls).items() if callable(v) and (not n.startswith("_") or n == "__init__")]
        for name in names:
            self.wrap(cls, name, label)
        return names

    def timed(self, function: Any, label: str) -> Any:
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def generator(*args: Any, **kwargs: Any) -> Any:
                inner = function(*args, **kwargs)
                try:
                    while True:
                        started = time.perf_counter()
                        self._depth[label] += 1
                        try:
                            item = next(inner)
                        except StopIteration:
                            return
                        finally:
                            self._depth[label] -= 1
                            if self._depth[label] == 0:
                                self.seconds[label] += time.perf_counter() - started
                        yield item
                finally:
                    inner.close()

            return generator

        @functools.wraps(function)
        def plain(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            self._depth[label] += 1
            try:
                return function(*args, **kwargs)
            finally:
                self._depth[label] -= 1
                if self._depth[label] == 0:
                    self.seconds[label] += time.perf_counter() - started
                    self.calls[label] += 1

        return plain

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {
            label: {"seconds": round(self.seconds[label], 3), "calls": self.calls[label]}
            for label in sorted(self.seconds)
        }


SQS_BILLING_CHUNK = 64 * 1024


class AwsCalls:
    """Counts and times every AWS API call made through boto3's default session (the handlers' clients).

    botocore hooks, installed before any client exists: calls per operation, wall seconds per operation
    (the round trip to moto included), payload bytes, SQS billing units (one per 64 KB of payload) and
    DynamoDB capacity units from item sizes (``bench.capacity``).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.payload_bytes: Counter[str] = Counter()
        self.sqs_billed: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        self.capacity: Any = None

    def install(self) -> AwsCalls:
        import boto3

        from bench.capacity import Capacity

        self.capacity = Capacity()
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events
        events.register("before-parameter-build", self._parameters)
        events.register("before-call", self._before)
        events.register("after-call", self._after)
        return self

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.service_name}.{model.name}"

    def _parameters(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        name = self._name(model)
        if name == "sqs.SendMessageBatch":
            size = sum(len(entry["MessageBody"].encode()) for entry in params.get("Entries", []))
            self.payload_bytes[name] += size
            self.sqs_billed[name] += max(1, math.ceil(size / SQS_BILLING_CHUNK))
            self.items[name] += len(params.get("Entries", []))
        elif name == "sqs.SendMessage":
            size = len(params.get("MessageBody", "").encode())
            self.payload_bytes[name] += size
            self.sqs_billed[name] += max(1, math.ceil(size / SQS_BILLING_CHUNK))
        elif name == "dynamodb.TransactWriteItems":
            self.items[name] += len(params.get("TransactItems", []))
        elif name == "dynamodb.BatchWriteItem":
            self.items[name] += sum(len(v) for v in params.get("RequestItems", {}).values())
        elif name == "dynamodb.GetItem" and params.get("ConsistentRead"):
            self.items["dynamodb.GetItem.consistent"] += 1

    def _before(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if model.service_model.service_name == "dynamodb":
            context["bench_body"] = params.get("body")
            self.capacity.before(model.name, params, context)
        context["bench_started"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], parsed: dict[str, Any], http_response: Any, **_: Any) -> None:
        name = self._name(model)
        self.calls[name] += 1
        started = context.get("bench_started")
        if started is not None:
            self.seconds[name] += time.perf_counter() - started
        if model.service_model.service_name == "dynamodb":
            self.capacity.after(
                model.name, http_response.status_code, context.get("bench_body"), http_response.content, context
            )
        if name == "sqs.ReceiveMessage":
            messages = parsed.get("Messages", [])
            size = sum(len(m.get("Body", "").encode()) for m in messages)
            self.payload_bytes[name] += size
            self.sqs_billed[name] += max(1, math.ceil(size / SQS_BILLING_CHUNK))
            self.items[name] += len(messages)
        elif name.startswith("sqs."):
            self.sqs_billed.setdefault(name, 0)
            if name not in ("sqs.SendMessageBatch", "sqs.SendMessage"):
                self.sqs_billed[name] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "seconds": {k: round(v, 3) for k, v in sorted(self.seconds.items())},
            "payload_bytes": dict(sorted(self.payload_bytes.items())),
            "sqs_billed_requests": dict(sorted(self.sqs_billed.items())),
            "items": dict(sorted(self.items.items())),
            "dynamodb_capacity": self.capacity.snapshot() if self.capacity else {},
            "side_seconds": round(self.capacity.side_seconds, 4) if self.capacity else 0.0,
        }


def diff_counts(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """``after - before`` for two ``AwsCalls.snapshot()`` results (nested dicts of numbers)."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            out[key] = diff_counts(value, before.get(key, {}))
        else:
            delta = value - before.get(key, 0)
            if delta:
                out[key] = round(delta, 3) if isinstance(delta, float) else delta
    return out

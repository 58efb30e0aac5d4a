"""Mapping rows of syncs that send changes: the event of each kind, when it happened, and what a clear sends."""

from __future__ import annotations

from typing import Any

import orjson

from segsync.changes import chunk_columns
from segsync.config import parse_sync
from segsync.mapping import Mapped, Mapper
from segsync.store import Rejection

FOUND_AT = 1_767_225_600.25
"""2026-01-01T00:00:00.250Z: when the run found the change."""


def _sync(**item: Any):
    base = {"name": "s", "source": "w", "destination": "d", "model": "SELECT * FROM t"}
    return parse_sync({**base, **item})


def _map(sync: Any, columns: list[str], values: list[Any], change: str) -> dict[str, Any] | Rejection:
    """Map a chunk row as the planner writes it for a sync that tracks removals (change and its time last)."""
    mapper = Mapper(sync, chunk_columns(sync, columns))
    mapped = mapper.map([values[0], "segsync-id", *values, change, FOUND_AT])
    return orjson.loads(mapped.body) if isinstance(mapped, Mapped) else mapped


TRIALS = {"object": "track", "behavior": "changes", "key": "user_id", "user_id": "user_id",
          "events": {"added": "Trial Started", "changed": "Trial Changed", "removed": "Trial Ended"},
          "properties": {"plan": "plan"}}  # fmt: skip


def test_each_change_kind_is_its_event_timed_when_the_run_found_it():
    sync = _sync(**TRIALS)
    for change, event in (("new", "Trial Started"), ("changed", "Trial Changed"), ("removed", "Trial Ended")):
        message = _map(sync, ["user_id", "plan"], ["u1", "pro"], change)
        assert (message["event"], message["userId"], message["properties"]) == (event, "u1", {"plan": "pro"})
        assert message["timestamp"] == "2026-01-01T00:00:00.250+00:00"


def test_a_timestamp_column_times_added_and_changed_events_but_never_a_removal():
    sync = _sync(**TRIALS, timestamp="changed_at")
    columns = ["user_id", "plan", "changed_at"]
    added = _map(sync, columns, ["u1", "pro", "2026-03-01T10:00:00Z"], "new")
    removed = _map(sync, columns, ["u1", "pro", "2026-03-01T10:00:00Z"], "removed")
    assert added["timestamp"] == "2026-03-01T10:00:00.000+00:00"
    assert removed["timestamp"] == "2026-01-01T00:00:00.250+00:00"


def test_a_kind_no_event_is_named_for_is_rejected_if_a_chunk_carries_it():
    # The planner records such rows without sending them; a chunk that carries one anyway is refused by name
    sync = _sync(**{**TRIALS, "events": {"removed": "Trial Ended"}})
    rejected = _map(sync, ["user_id", "plan"], ["u1", "pro"], "new")
    assert rejected == Rejection("u1", "event", "event name is missing or empty")


def test_a_cleared_user_gets_every_trait_the_sync_sets_as_null():
    # Given a User sync that clears on removal, with named, constant, nested, whole-object and bulk traits
    sync = _sync(
        object="user", key="id", on_removal="clear", sync_all_properties=True, normalization="camelCase",
        traits={"plan": "plan", "source": {"value": "warehouse"}},
        mappings={"traits.billing.mrr": "mrr", "traits": "attrs", "context.ip": "ip",
                  "integrations.All": {"value": False}},
    )  # fmt: skip
    columns = ["id", "plan", "mrr", "attrs", "ip", "last_seen"]
    values = ["u1", "pro", 99, {"tier": 2, "vip": None}, "10.0.0.1", "2026-01-01"]

    # When a kept row maps as it is, and as removed
    kept = _map(sync, columns, values, "changed")
    cleared = _map(sync, columns, values, "removed")

    # Then the removal nulls each top-level trait the sync set for the key, and keeps its context and routing
    assert kept["traits"] == {
        "lastSeen": "2026-01-01", "tier": 2, "plan": "pro", "source": "warehouse", "billing": {"mrr": 99},
    }  # fmt: skip
    assert cleared["traits"] == dict.fromkeys(["plan", "source", "billing", "lastSeen", "tier", "vip"])
    assert cleared["context"]["ip"] == "10.0.0.1" and cleared["integrations"] == {"All": False}
    assert (cleared["type"], cleared["userId"]) == ("identify", "u1")


def test_a_cleared_group_keeps_its_group_and_user_from_the_values_last_delivered():
    sync = _sync(
        object="group", key="membership", group_id="account", user_id="owner", on_removal="clear",
        traits={"plan": "plan", "seats": "seats"},
    )  # fmt: skip
    cleared = _map(sync, ["membership", "account", "owner", "plan", "seats"], ["m1", "a1", "u1", "pro", 3], "removed")
    assert (cleared["type"], cleared["groupId"], cleared["userId"]) == ("group", "a1", "u1")
    assert cleared["traits"] == {"plan": None, "seats": None}


def test_a_removed_group_row_without_its_owner_is_rejected_not_sent():
    # A key delivered before its sync kept values has none: the group cannot be addressed, so it is refused
    sync = _sync(object="group", key="membership", group_id="account", user_id="owner", on_removal="clear")
    rejected = _map(sync, ["membership", "account", "owner"], [None, None, None], "removed")
    assert isinstance(rejected, Rejection)

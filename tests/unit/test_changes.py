"""Change kinds, the mass-removal guard, removal messageIds, and values read back from their canonical text."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import orjson
import pytest

from segsync.changes import (
    CHANGE_COLUMN,
    FOUND_AT_COLUMN,
    ChunkValues,
    check_removals,
    check_request,
    from_text,
    keeps_values,
    last_values,
    sent_kinds,
    silent_kinds,
    tracks_removals,
)
from segsync.chunks import encode_value
from segsync.config import parse_sync
from segsync.errors import ConfigError, MassRemoval
from segsync.mapping import row_message_id
from segsync.warehouse.dialect import Kind, ModelColumn

OLD, NEW_HASH = "a" * 32, "b" * 32


def changes(**overrides: Any):
    item = {
        "name": "trials", "object": "track", "behavior": "changes", "source": "w", "destination": "s",
        "model": "SELECT * FROM trials", "key": "user_id", "user_id": "user_id",
        "events": {"added": "Trial Started", "changed": "Trial Changed", "removed": "Trial Ended"},
        "properties": {"plan": "plan"},
    }  # fmt: skip
    return parse_sync({**item, **overrides})


def users(**overrides: Any):
    item = {"name": "users", "object": "user", "source": "w", "destination": "s", "model": "SELECT * FROM users",
            "key": "id", "traits": {"plan": "plan"}}  # fmt: skip
    return parse_sync({**item, **overrides})


def orders():
    return parse_sync(
        {"name": "orders", "object": "track", "source": "w", "destination": "s", "model": "SELECT * FROM orders",
         "key": "order_id", "user_id": "user_id", "event": {"value": "Order Completed"}}
    )  # fmt: skip


# --- what each sync sends, records, keeps ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sync", "sent", "silent", "removals", "values"),
    [
        (users(), ("new", "changed", "resync"), (), False, False),
        (users(on_removal="ignore"), ("new", "changed", "resync"), (), False, False),
        (users(on_removal="clear"), ("new", "changed", "resync", "removed"), (), True, True),
        (orders(), ("new", "changed", "resync"), (), False, False),
        (changes(), ("new", "changed", "removed"), ("resync",), True, True),
        (changes(events={"removed": "Trial Ended"}), ("removed",), ("new", "changed", "resync"), True, True),
        (changes(events={"added": "Trial Started"}), ("new",), ("changed", "resync", "removed"), True, False),
    ],
)
def test_what_a_sync_sends_records_silently_and_keeps(sync, sent, silent, removals, values):
    assert sent_kinds(sync) == sent
    assert silent_kinds(sync, baseline=False) == silent
    assert tracks_removals(sync) is removals
    assert keeps_values(sync) is values


def test_a_baseline_records_every_kind_and_sends_none():
    assert silent_kinds(users(), baseline=True) == ("new", "changed", "resync")
    assert silent_kinds(changes(), baseline=True) == ("new", "changed", "resync", "removed")


def test_a_full_resync_of_a_changes_sync_or_with_a_baseline_is_refused():
    with pytest.raises(ConfigError, match=r"full resync would send every row as 'added' again.*--mark-synced"):
        check_request(changes(), full_resync=True, baseline=False)
    with pytest.raises(ConfigError, match="ask for one of them"):
        check_request(users(), full_resync=True, baseline=True)
    check_request(users(on_removal="clear"), full_resync=True, baseline=False)


# --- a removal is only a removal ---------------------------------------------------------------------


def test_removals_up_to_the_share_go_and_past_it_fail_the_run_naming_the_counts():
    # Given the default share (half of the keys delivered before)
    check_removals(users(on_removal="clear"), removed=50, delivered=100, rows=50, allowed=False)

    # When one more key is gone, Then the run fails with the counts and the way on
    with pytest.raises(MassRemoval) as caught:
        check_removals(users(on_removal="clear"), removed=51, delivered=100, rows=49, allowed=False)
    assert str(caught.value) == (
        "51 of the 100 keys delivered before are no longer in the model (51%, over max_removed_share 0.5): "
        "no removals are sent and the run fails; if they really left, run it again with --allow-mass-removal"
    )


def test_an_empty_model_is_a_mass_removal_whatever_the_share():
    # Given a sync that allows every key to go at once, When its model returns no rows, Then that still fails
    sync = users(on_removal="clear", max_removed_share=1)
    check_removals(sync, removed=99, delivered=100, rows=1, allowed=False)
    with pytest.raises(MassRemoval, match="the model returned no rows, so all 100 keys delivered before"):
        check_removals(sync, removed=100, delivered=100, rows=0, allowed=False)


def test_allowed_mass_removals_and_runs_without_removals_pass():
    check_removals(changes(max_removed_share=0.1), removed=100, delivered=100, rows=0, allowed=True)
    check_removals(changes(), removed=0, delivered=100, rows=0, allowed=False)


# --- messageIds ----------------------------------------------------------------------------------------


def _id(sync, change, previous, new, run="run-1"):
    return row_message_id(sync, "u1", previous, new, None, change=change, run_id=run)


def test_change_event_ids_are_stable_within_a_run_and_new_for_every_change():
    sync = changes()
    added, changed, removed = (
        _id(sync, "new", None, OLD),
        _id(sync, "changed", OLD, NEW_HASH),
        _id(sync, "removed", NEW_HASH, None),
    )

    # A resend of the same planned row keeps its id (a redelivered chunk, a retried batch)
    assert added == _id(sync, "new", None, OLD) and removed == _id(sync, "removed", NEW_HASH, None)
    # Each change is its own event, and a key that leaves and comes back as it was is a new event
    assert len({added, changed, removed}) == 3
    assert _id(sync, "new", None, OLD, run="run-2") != added
    assert _id(sync, "removed", NEW_HASH, None, run="run-3") != removed


def test_change_events_timed_by_a_column_are_identified_by_their_versions():
    # Given added and changed events whose time is a column (it is in the row hash)
    sync = changes(timestamp="updated_at")

    # Then a re-plan by another run keeps their ids; a removal is still the run's (timed by it)
    assert _id(sync, "new", None, OLD, run="run-2") == _id(sync, "new", None, OLD)
    assert _id(sync, "changed", OLD, NEW_HASH, run="run-2") == _id(sync, "changed", OLD, NEW_HASH)
    assert _id(sync, "removed", OLD, None, run="run-2") != _id(sync, "removed", OLD, None)


def test_a_clearing_identify_and_a_returning_key_never_reuse_an_id():
    sync = users(on_removal="clear")
    first = _id(sync, "new", None, OLD)
    cleared = _id(sync, "removed", OLD, None, run="run-2")
    back = _id(sync, "new", None, OLD, run="run-3")
    assert len({first, cleared, back}) == 3
    assert first == _id(sync, "new", None, OLD) and cleared == _id(sync, "removed", OLD, None, run="run-2")


def test_syncs_that_send_no_removals_keep_their_ids():
    # The identify and track rules of earlier versions, whatever run plans the row
    plain = users()
    assert _id(plain, "new", None, OLD, run="run-9") == row_message_id(plain, "u1", None, OLD, None)
    assert _id(orders(), "new", None, OLD, run="run-9") == row_message_id(orders(), "u1", None, "c" * 32, None)


# --- values kept for a removal -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("12345678901234567890123", Kind.INTEGER, 12345678901234567890123),
        ("7.5", Kind.DECIMAL, Decimal("7.5")),
        ("0.1", Kind.FLOAT, 0.1),
        ("true", Kind.BOOLEAN, True),
        ("false", Kind.BOOLEAN, False),
        ("2026-01-08T00:00:00Z", Kind.TIMESTAMP, datetime(2026, 1, 8, tzinfo=UTC)),
        ("2026-01-08T01:02:03.5Z", Kind.TIMESTAMP_TZ, datetime(2026, 1, 8, 1, 2, 3, 500000, tzinfo=UTC)),
        ("2026-01-08", Kind.DATE, date(2026, 1, 8)),
        ("12:30:00.25", Kind.TIME, time(12, 30, 0, 250000)),
        ("00ff", Kind.BINARY, b"\x00\xff"),
        ('{"a":[1,null]}', Kind.JSON, {"a": [1, None]}),
        ("x", Kind.STRING, "x"),
        (None, Kind.INTEGER, None),
    ],
)
def test_a_kept_value_reads_back_from_its_canonical_text(text, kind, value):
    assert from_text(text, kind) == value


def test_a_kept_timestamp_travels_as_the_one_it_replaces():
    # A naive warehouse timestamp and its canonical text read back serialize to the same text in a chunk
    assert encode_value(from_text("2026-01-08T00:00:00.5Z", Kind.TIMESTAMP)) == encode_value(
        datetime(2026, 1, 8, 0, 0, 0, 500000)
    )


def test_a_removed_row_travels_with_its_last_values_the_change_and_when_it_was_found():
    # Given a model of three columns and a sync that sends removals
    columns = [ModelColumn("user_id", Kind.STRING, "VARCHAR"), ModelColumn("plan", Kind.STRING, "VARCHAR"),
               ModelColumn("seats", Kind.INTEGER, "BIGINT")]  # fmt: skip
    values = ChunkValues(changes(), columns, found_at=1_700_000_000.5)
    kept = orjson.dumps({"user_id": "u1", "plan": "pro", "seats": "3"}).decode()

    # Then chunks name the change columns, a removed row carries its kept values, others their own
    assert values.names == ["user_id", "plan", "seats", CHANGE_COLUMN, FOUND_AT_COLUMN]
    assert values("removed", kept, (None, None, None)) == ("u1", "pro", 3, "removed", 1_700_000_000.5)
    assert values("new", None, ("u2", "free", 1)) == ("u2", "free", 1, "new", 1_700_000_000.5)
    # A column the sync did not keep (added to the model since) is null; a key with nothing kept, all null
    assert last_values('{"user_id": "u1"}', columns) == ["u1", None, None]
    assert last_values(None, columns) == [None, None, None]


def test_syncs_without_removals_travel_as_before():
    columns = [ModelColumn("id", Kind.STRING, "VARCHAR")]
    values = ChunkValues(users(), columns, found_at=0.0)
    row = ("u1",)
    assert values.names == ["id"] and values("new", None, row) is row

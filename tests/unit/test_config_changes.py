"""Config of change events and removals: what a sync may say, and one clear line for what it may not."""

from __future__ import annotations

import pytest

from segsync.config import parse_sync
from segsync.errors import ConfigError
from segsync.mapping import mapping_fingerprint

TRACK = {"name": "trials", "object": "track", "source": "w", "destination": "s", "model": "SELECT * FROM t",
         "key": "user_id", "user_id": "user_id", "properties": {"plan": "plan"}}  # fmt: skip
USER = {"name": "users", "object": "user", "source": "w", "destination": "s", "model": "SELECT * FROM t",
        "key": "id", "traits": {"plan": "plan"}}  # fmt: skip
GROUP = {"name": "accounts", "object": "group", "source": "w", "destination": "s", "model": "SELECT * FROM t",
         "key": "id", "user_id": "owner", "traits": {"plan": "plan"}}  # fmt: skip


def test_a_changes_sync_names_any_of_its_events():
    sync = parse_sync({**TRACK, "behavior": "changes", "events": {"removed": "Trial Ended"}, "max_removed_share": 0.2})
    assert (sync.behavior, sync.events.removed, sync.events.added, sync.max_removed_share) == (
        "changes",
        "Trial Ended",
        None,
        0.2,
    )


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ({"behavior": "changes"}, "a changes sync needs 'events': {added: NAME, changed: NAME, removed: NAME}"),
        ({"behavior": "changes", "events": {}}, "name at least one event: added, changed or removed"),
        ({"behavior": "changes", "events": {"added": " "}}, "the 'added' event name must be non-empty text"),
        ({"behavior": "changes", "events": {"left": "X"}}, "field 'events.left': Extra inputs are not permitted"),
        (
            {"behavior": "changes", "events": {"added": "A"}, "event": "name"},
            "a changes sync names its events in 'events' ({added, changed, removed}), not 'event'",
        ),
        (
            {"behavior": "changes", "events": {"added": "A"}, "cursor": "loaded_at"},
            "with a 'cursor', the rows it did not scan would look removed",
        ),
        ({}, "a track sync needs 'event' (a column or {value: NAME})"),
        (
            {"event": "name", "events": {"added": "A"}},
            "'events' names the events of behavior: changes; an append sync sends one 'event' per new row",
        ),
        ({"event": "name", "max_removed_share": 0.5}, "'max_removed_share' guards the removals of behavior: changes"),
        ({"behavior": "upsert", "event": "name"}, "field 'behavior'"),
    ],
)
def test_a_track_sync_says_what_is_wrong_with_its_behavior(item, says):
    with pytest.raises(ConfigError) as caught:
        parse_sync({**TRACK, **item})
    assert str(caught.value).startswith("sync 'trials': ") and says in str(caught.value)


@pytest.mark.parametrize("base", [USER, GROUP])
def test_user_and_group_syncs_clear_or_ignore_removals(base):
    assert parse_sync(base).on_removal is None
    assert parse_sync({**base, "on_removal": "clear", "max_removed_share": 1}).on_removal == "clear"
    with pytest.raises(ConfigError, match="'max_removed_share' guards the removals of on_removal: clear"):
        parse_sync({**base, "on_removal": "ignore", "max_removed_share": 0.3})
    with pytest.raises(ConfigError, match="field 'on_removal'"):
        parse_sync({**base, "on_removal": "delete"})
    with pytest.raises(ConfigError, match="field 'max_removed_share': Input should be greater than 0"):
        parse_sync({**base, "on_removal": "clear", "max_removed_share": 0})


def test_fingerprints_of_existing_syncs_did_not_move():
    # Given syncs written before removals existed, When fingerprinted now, Then as before (an upgrade re-sends
    # nothing), and neither removal settings nor event names move a fingerprint (they shape no row's values)
    user = parse_sync(USER)
    track = parse_sync({**TRACK, "event": {"value": "Order Completed"}, "properties": {"total": "total"},
                        "key": "id", "user_id": "uid", "name": "orders"})  # fmt: skip
    group = parse_sync(GROUP)
    assert (mapping_fingerprint(user), mapping_fingerprint(group), mapping_fingerprint(track)) == (
        "5dc8769a753e0dbf",
        "6d1545c191d020b3",
        "23721d9a2c7e3128",
    )
    assert mapping_fingerprint(parse_sync({**USER, "on_removal": "clear", "max_removed_share": 0.1})) == (
        mapping_fingerprint(user)
    )
    renamed = [
        parse_sync({**TRACK, "behavior": "changes", "events": {"added": name}}) for name in ("Trial Started", "Began")
    ]
    assert mapping_fingerprint(renamed[0]) == mapping_fingerprint(renamed[1])


def test_sync_items_without_the_new_fields_read_back_unchanged():
    # A sync item written before this version, as DynamoDB holds it, has no new field once dumped for the table
    for item in (USER, GROUP, {**TRACK, "event": "name"}):
        dumped = parse_sync(item).model_dump(mode="json", by_alias=True, exclude_none=True)
        assert not {"on_removal", "max_removed_share", "events"} & set(dumped)

"""Every mapping feature as a golden payload: Group, paths, whole objects, nulls, Sync All Properties."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from segsync import __version__
from segsync.config import parse_sync
from segsync.errors import ConfigError
from segsync.mapping import (
    MAX_PROPERTIES,
    Mapped,
    Mapper,
    mapping_fingerprint,
    normalize,
    row_message_id,
    source_columns,
)
from segsync.store import Rejection
from tests.rows import map_row
from tests.segment_spec import problems

LIBRARY = {"name": "segsync", "version": __version__}
CONTEXT = {"library": LIBRARY}
BASE = {"source": "warehouse", "destination": "segment", "model": "SELECT * FROM t"}


def sync(**fields: Any):
    return parse_sync({**BASE, **fields})


def user(**fields: Any):
    return sync(**{"name": "users", "object": "user", "key": "id", **fields})


def group(**fields: Any):
    return sync(**{"name": "accounts", "object": "group", "key": "account_id", "user_id": "owner_id", **fields})


def track(**fields: Any):
    return sync(
        **{
            "name": "orders",
            "object": "track",
            "key": "order_id",
            "event": {"value": "Order Completed"},
            "user_id": "user_id",
            **fields,
        }
    )


def mapped(mapper: Mapper, row: list[Any]) -> dict[str, Any]:
    """Map a row that must be accepted; the message must also pass the independent spec check."""
    result = map_row(mapper, row)
    assert isinstance(result, Mapped), result
    message = orjson.loads(result.body)
    assert problems(message) == []
    return message


def rejected(mapper: Mapper, row: list[Any]) -> Rejection:
    result = map_row(mapper, row)
    assert isinstance(result, Rejection), result
    return result


# --- Group --------------------------------------------------------------------------------------------

GROUP_COLUMNS = ["account_id", "owner_id", "anon", "name", "plan", "seats"]


def test_group_row_becomes_a_group_call_tying_the_user_to_the_group():
    # Given a Group sync keyed on the account, with the owner as the user and two traits
    mapper = Mapper(group(traits={"name": "name", "plan": "plan"}), GROUP_COLUMNS)

    # When a row is mapped
    result = map_row(mapper, ["acc_1", "u1", None, "Initech", "enterprise", 40])

    # Then it is exactly this group call (groupId defaults to the key column)
    assert isinstance(result, Mapped)
    assert result.key == "acc_1"
    assert orjson.loads(result.body) == {
        "type": "group",
        "groupId": "acc_1",
        "userId": "u1",
        "traits": {"name": "Initech", "plan": "enterprise"},
        "context": CONTEXT,
        # The planner's id for a first delivery (tests/rows.py: no hash delivered before, new hash 0…0)
        "messageId": "segsync-54676a83-f560-5cf1-b09c-776df63bf133",
    }


def test_group_id_can_come_from_its_own_column_and_the_user_from_anonymous_id():
    # Given memberships keyed on their own id, a group_id column and an anonymous user
    columns = ["membership_id", "account_id", "anon", "plan"]
    mapper = Mapper(group(key="membership_id", group_id="account_id", user_id=None, anonymous_id="anon"), columns)

    # When mapped
    message = mapped(mapper, ["m1", 42, "anon-9", "pro"])

    # Then the group is the account (as text) and the user is anonymous
    assert (message["groupId"], message["anonymousId"]) == ("42", "anon-9")
    assert "userId" not in message
    assert message["traits"] == {}


@pytest.mark.parametrize("group_id", [None, "", "  "])
def test_group_without_a_group_id_is_rejected(group_id):
    # Given a membership whose group id is missing
    mapper = Mapper(group(key="m", group_id="account_id"), ["m", "account_id", "owner_id"])

    # When mapped, Then it is rejected on groupId, naming the column
    assert map_row(mapper, ["m1", group_id, "u1"]) == Rejection(
        "m1", "groupId", "group id column 'account_id' is null or empty"
    )


def test_group_without_any_user_is_rejected():
    # Given a group row with neither a userId nor an anonymousId
    mapper = Mapper(group(anonymous_id="anon"), GROUP_COLUMNS)

    # When mapped, Then Segment is spared a message it would drop
    assert map_row(mapper, ["acc_1", None, "", "Initech", "pro", 1]) == Rejection(
        "acc_1", "userId", "both userId and anonymousId are null or empty"
    )


def test_a_group_and_an_identify_of_the_same_key_and_hashes_have_different_ids():
    # Given a Group sync and a User sync of the same name over the same key and hashes
    as_group = row_message_id(group(name="accounts"), "acc_1", None, "a" * 32, None)
    as_user = row_message_id(user(name="accounts"), "acc_1", None, "a" * 32, None)

    # Then they are two messages to Segment
    assert as_group != as_user


# --- paths: any Segment field ---------------------------------------------------------------------

TRACK_COLUMNS = ["order_id", "user_id", "total", "currency", "ip", "email", "send_to_mixpanel"]
TRACK_ROW = ["o1", "u1", 12.34, "EUR", "203.0.113.9", "a@example.com", False]


def test_columns_and_constants_reach_nested_paths_and_context_and_integrations():
    # Given a Track sync mapping nested properties, context fields and integrations
    mapper = Mapper(
        track(
            properties={"currency": "currency"},
            mappings={
                "properties.order.total": "total",
                "properties.order.source": {"value": "warehouse"},
                "context.ip": "ip",
                "context.traits.email": "email",
                "integrations.All": {"value": True},
                "integrations.Mixpanel": "send_to_mixpanel",
                'integrations."Segment.io"': {"value": {"apiHost": "eu"}},
            },
        ),
        TRACK_COLUMNS,
    )

    # When a row is mapped
    result = map_row(mapper, TRACK_ROW)

    # Then each value sits at its path, next to segsync's own context.library
    assert isinstance(result, Mapped)
    assert orjson.loads(result.body) == {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "properties": {"currency": "EUR", "order": {"total": 12.34, "source": "warehouse"}},
        "context": {"library": LIBRARY, "ip": "203.0.113.9", "traits": {"email": "a@example.com"}},
        "integrations": {"All": True, "Mixpanel": False, "Segment.io": {"apiHost": "eu"}},
        # A track's id is its event key's alone, whatever the mapping
        "messageId": "segsync-858b57dd-8b5c-58da-b6de-7780fb97b5cb",
    }


def test_identify_with_context_mappings_fills_context_next_to_the_library():
    # Given a User sync that also maps the user's IP into context
    mapper = Mapper(user(traits={"email": "email"}, mappings={"context.ip": "ip"}), ["id", "email", "ip"])

    # When a user is mapped, Then context holds the IP beside segsync's library
    first = mapped(mapper, ["u1", "a@example.com", "203.0.113.9"])
    assert first["context"] == {"library": LIBRARY, "ip": "203.0.113.9"}


def test_an_integrations_column_that_is_not_a_boolean_or_object_is_rejected():
    # Given integrations.Mixpanel mapped from a column holding text
    mapper = Mapper(track(mappings={"integrations.Mixpanel": "currency"}), TRACK_COLUMNS)

    # When mapped, Then the row is rejected on that integration (Segment would misread it)
    result = rejected(mapper, TRACK_ROW)
    assert (result.field, result.reason) == (
        "integrations.Mixpanel",
        "must be true, false or an options object, not 'EUR'",
    )


def test_a_null_integration_setting_is_left_out_even_when_nulls_are_sent():
    # Given a sync that sends nulls, and an integration column that is null
    mapper = Mapper(track(null_values="send", mappings={"integrations.Mixpanel": "send_to_mixpanel"}), TRACK_COLUMNS)

    # When mapped, Then no integrations object is sent (null is not a setting)
    assert "integrations" not in mapped(mapper, [*TRACK_ROW[:-1], None])


# --- whole objects from JSON / STRUCT / VARIANT columns ----------------------------------------------

WHOLE_COLUMNS = ["id", "attrs", "ctx", "plan"]


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param({"plan": "pro", "seats": 3, "tags": ["a", "b"]}, id="STRUCT or OBJECT as a dict"),
        pytest.param('{"plan": "pro", "seats": 3, "tags": ["a", "b"]}', id="Snowflake VARIANT as JSON text"),
    ],
)
def test_a_json_column_fills_a_whole_object(attrs):
    # Given traits and context filled from whole-object columns
    mapper = Mapper(user(mappings={"traits": "attrs", "context": "ctx"}), WHOLE_COLUMNS)

    # When a row is mapped
    message = mapped(mapper, ["u1", attrs, {"ip": "203.0.113.9", "locale": "fr-FR"}, None])

    # Then the objects are the columns' own
    assert message["traits"] == {"plan": "pro", "seats": 3, "tags": ["a", "b"]}
    assert message["context"] == {"library": LIBRARY, "ip": "203.0.113.9", "locale": "fr-FR"}


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ('{"plan": "pro"', "column 'attrs' is not valid JSON, so it cannot fill an object"),
        ("NaN", "column 'attrs' is not valid JSON, so it cannot fill an object"),
        ("[1, 2]", "column 'attrs' holds an array, not a JSON object"),
        ('"pro"', "column 'attrs' holds a string, not a JSON object"),
        ([1, 2], "column 'attrs' holds an array, not a JSON object"),
        (42, "column 'attrs' holds a number, not a JSON object"),
    ],
)
def test_a_whole_object_column_that_is_not_an_object_is_rejected_with_the_reason(attrs, reason):
    # Given traits filled from a column, and a row where it is not an object
    mapper = Mapper(user(mappings={"traits": "attrs"}), WHOLE_COLUMNS)

    # When mapped, Then the row is rejected on the target, saying why
    assert map_row(mapper, ["u1", attrs, None, None]) == Rejection("u1", "traits", reason)


@pytest.mark.parametrize("attrs", [None, "null"])
def test_a_null_whole_object_column_adds_nothing(attrs):
    # Given a whole-object column that is null (SQL NULL, or VARIANT null), When mapped
    mapper = Mapper(user(mappings={"traits": "attrs"}, traits={"plan": "plan"}), WHOLE_COLUMNS)

    # Then the other traits still go
    assert mapped(mapper, ["u1", attrs, None, "pro"])["traits"] == {"plan": "pro"}


def test_a_whole_context_column_cannot_replace_segsyncs_library():
    # Given a context column that carries its own "library"
    mapper = Mapper(user(mappings={"context": "ctx"}), WHOLE_COLUMNS)

    # When mapped, Then context.library still names segsync
    ctx = {"library": {"name": "spoof"}, "ip": "203.0.113.9"}
    assert mapped(mapper, ["u1", None, ctx, None])["context"] == {"library": LIBRARY, "ip": "203.0.113.9"}


def test_explicit_fields_override_a_whole_object_and_deeper_paths_override_shallower_ones():
    # Given properties from a STRUCT column, one property overridden, and a nested path into another
    columns = ["order_id", "user_id", "props", "total", "coupon"]
    mapper = Mapper(
        track(mappings={"properties": "props", "properties.order.total": "total", "properties.coupon": "coupon"}),
        columns,
    )
    props = {"coupon": "OLD", "order": {"id": 7, "total": 1.0}, "sku": "A"}
    row = ["o1", "u1", props, 99.5, "NEW"]
    snapshot = copy.deepcopy(row)

    # When mapped
    message = mapped(mapper, row)

    # Then the explicit values win, the rest of the struct stays, and the row itself is untouched
    assert message["properties"] == {"coupon": "NEW", "order": {"id": 7, "total": 99.5}, "sku": "A"}
    assert row == snapshot


def test_over_ten_thousand_properties_are_rejected_before_the_size_check():
    # Given a properties column with one more entry than Segment keeps
    mapper = Mapper(track(mappings={"properties": "props"}), ["order_id", "user_id", "props"])
    props = {f"p{i}": 1 for i in range(MAX_PROPERTIES + 1)}

    # When mapped, Then it is rejected for its count (Segment drops what is past the limit)
    assert map_row(mapper, ["o1", "u1", props]) == Rejection(
        "o1", "properties", "10,001 properties, over Segment's 10,000"
    )
    assert isinstance(map_row(mapper, ["o1", "u1", {f"p{i}": 1 for i in range(100)}]), Mapped)


# --- nulls ----------------------------------------------------------------------------------------

NULL_COLUMNS = ["id", "plan", "email", "score"]


def test_nulls_are_left_out_by_default_so_they_never_erase_a_trait():
    mapper = Mapper(user(traits={"plan": "plan", "email": "email"}), NULL_COLUMNS)
    assert mapped(mapper, ["u1", None, "a@example.com", None])["traits"] == {"email": "a@example.com"}


def test_a_sync_can_send_nulls_and_one_field_can_still_leave_them_out():
    # Given a sync that sends nulls, except for email
    mapper = Mapper(
        user(null_values="send", traits={"plan": "plan", "email": {"column": "email", "nulls": "omit"}}),
        NULL_COLUMNS,
    )

    # When both are null, Then plan is sent as null (clearing it) and email is left alone
    assert mapped(mapper, ["u1", None, None, None])["traits"] == {"plan": None}


def test_one_field_can_send_nulls_in_a_sync_that_omits_them():
    # Given the default (omit) with one field that sends its nulls, at a nested path too
    mapper = Mapper(
        user(
            traits={"plan": {"column": "plan", "nulls": "send"}, "email": "email"},
            mappings={
                "traits.scores.last": {"column": "score", "nulls": "send"},
                "traits.scores.best": "score",
            },
        ),
        NULL_COLUMNS,
    )

    # When mapped with nulls, Then only the send fields appear, with null
    assert mapped(mapper, ["u1", None, None, None])["traits"] == {"plan": None, "scores": {"last": None}}


def test_an_omitted_null_at_a_nested_path_leaves_no_empty_parent():
    mapper = Mapper(user(mappings={"traits.address.city": "plan"}), NULL_COLUMNS)
    assert mapped(mapper, ["u1", None, None, None])["traits"] == {}


def test_a_null_constant_is_sent_as_written():
    # Given a constant null (the way to clear a trait on purpose), When mapped, Then it is sent
    mapper = Mapper(user(traits={"legacy_plan": {"value": None}}), NULL_COLUMNS)
    assert mapped(mapper, ["u1", None, None, None])["traits"] == {"legacy_plan": None}


def test_null_keys_inside_a_whole_object_follow_the_columns_null_rule():
    # Given traits from an object column, once with the default rule and once sending nulls
    columns = ["id", "attrs"]
    omit = Mapper(user(mappings={"traits": "attrs"}), columns)
    send = Mapper(user(mappings={"traits": {"column": "attrs", "nulls": "send"}}), columns)
    row = ["u1", {"plan": None, "seats": 3, "address": {"city": None}}]

    # Then top-level nulls are left out (or sent); nulls deeper inside are the column's own data
    assert mapped(omit, row)["traits"] == {"seats": 3, "address": {"city": None}}
    assert mapped(send, row)["traits"] == {"plan": None, "seats": 3, "address": {"city": None}}


# --- Sync All Properties ------------------------------------------------------------------------------

ALL_COLUMNS = ["USER_ID", "EMAIL", "FIRST_NAME", "lifetimeValue", "Signup Date", "__segsync_key_count"]
ALL_ROW = ["u1", "a@example.com", "Ada", 12.5, "2024-01-01", 1]


@pytest.mark.parametrize(
    ("normalization", "names"),
    [
        ("none", ["EMAIL", "FIRST_NAME", "lifetimeValue", "Signup Date"]),
        ("snake_case", ["email", "first_name", "lifetime_value", "signup_date"]),
        ("camelCase", ["email", "firstName", "lifetimeValue", "signupDate"]),
        ("PascalCase", ["Email", "FirstName", "LifetimeValue", "SignupDate"]),
        ("Title Case", ["Email", "First Name", "Lifetime Value", "Signup Date"]),
        ("lowercase", ["email", "first_name", "lifetimevalue", "signup date"]),
    ],
)
def test_sync_all_properties_sends_every_other_column_under_its_normalized_name(normalization, names):
    # Given a User sync with Sync All Properties (Snowflake-style upper-case columns among others)
    mapper = Mapper(user(key="user_id", sync_all_properties=True, normalization=normalization), ALL_COLUMNS)

    # When a row is mapped
    traits = mapped(mapper, ALL_ROW)["traits"]

    # Then every column but the key (and segsync's own) is a trait, named by the rule
    assert traits == dict(zip(names, ["a@example.com", "Ada", 12.5, "2024-01-01"], strict=True))


def test_sync_all_properties_picks_up_a_new_column_on_the_next_run():
    # Given the same sync over the model before and after a column was added
    item = user(key="user_id", sync_all_properties=True, normalization="snake_case")
    before = mapped(Mapper(item, ALL_COLUMNS[:3]), ALL_ROW[:3])
    after = mapped(Mapper(item, [*ALL_COLUMNS[:3], "PLAN"]), [*ALL_ROW[:3], "pro"])

    # Then the new column is a trait, with no change to the sync
    assert set(after["traits"]) - set(before["traits"]) == {"plan"}


def test_explicit_mappings_win_over_sync_all_properties_and_used_columns_are_not_repeated():
    # Given Sync All Properties plus an explicit plan constant and the email mapped into context
    mapper = Mapper(
        user(
            key="user_id",
            sync_all_properties=True,
            normalization="snake_case",
            traits={"first_name": {"value": "overridden"}},
            mappings={"context.traits.email": "email"},
        ),
        ALL_COLUMNS,
    )

    # When mapped
    message = mapped(mapper, ALL_ROW)

    # Then the explicit trait wins, and EMAIL went to context only (not also to traits)
    assert message["traits"] == {
        "first_name": "overridden",
        "lifetime_value": 12.5,
        "signup_date": "2024-01-01",
    }
    assert message["context"]["traits"] == {"email": "a@example.com"}


def test_track_sync_all_properties_leaves_out_the_identity_event_and_time_columns():
    # Given a Track sync with every column used for identity, event and time, plus two others
    columns = ["event_id", "user_id", "anon", "event_name", "occurred_at", "sku", "price"]
    mapper = Mapper(
        track(
            key="event_id",
            anonymous_id="anon",
            event="event_name",
            timestamp="occurred_at",
            sync_all_properties=True,
        ),
        columns,
    )

    # When mapped, Then only the other columns are properties
    row = ["e1", "u1", "a1", "Viewed", "2026-03-01T10:00:00Z", "SKU-1", 9.99]
    assert mapped(mapper, row)["properties"] == {"sku": "SKU-1", "price": 9.99}


def test_sync_all_properties_omits_nulls_unless_the_sync_sends_them():
    omit = Mapper(user(key="user_id", sync_all_properties=True), ALL_COLUMNS[:3])
    send = Mapper(user(key="user_id", sync_all_properties=True, null_values="send"), ALL_COLUMNS[:3])
    assert mapped(omit, ["u1", None, "Ada"])["traits"] == {"FIRST_NAME": "Ada"}
    assert mapped(send, ["u1", None, "Ada"])["traits"] == {"EMAIL": None, "FIRST_NAME": "Ada"}


def test_two_columns_that_normalize_to_one_name_are_a_config_error_naming_both():
    # Given columns that become the same trait under snake_case
    columns = ["id", "first_name", "FirstName"]

    # When the mapper is built for a run, Then both columns and the rule are named
    with pytest.raises(ConfigError) as caught:
        Mapper(user(sync_all_properties=True, normalization="snake_case"), columns)
    assert str(caught.value) == (
        "sync 'users' field 'normalization': columns 'first_name' and 'FirstName' both become "
        "traits 'first_name' (snake_case); rename one in the model or map one explicitly"
    )
    # and mapping one of them explicitly settles it
    fixed = Mapper(
        user(sync_all_properties=True, normalization="snake_case", mappings={"traits.first": "FirstName"}),
        columns,
    )
    assert mapped(fixed, ["u1", "Ada", "Grace"])["traits"] == {"first_name": "Ada", "first": "Grace"}


@pytest.mark.parametrize(
    ("name", "snake", "camel"),
    [
        ("HTTPServerURL", "http_server_url", "httpServerUrl"),
        ("userID", "user_id", "userId"),
        ("address2Line", "address2_line", "address2Line"),
        ("  spaced   out  ", "spaced_out", "spacedOut"),
        ("déjà-vu", "déjà_vu", "déjàVu"),
        ("___", "___", "___"),
    ],
)
def test_normalization_splits_words_as_people_read_them(name, snake, camel):
    assert (normalize(name, "snake_case"), normalize(name, "camelCase")) == (snake, camel)


# --- what shapes a message ------------------------------------------------------------------------


def test_source_columns_are_every_column_a_message_reads_and_no_other():
    # Given a Group sync reading columns through every kind of source
    columns = ["m_id", "ACCOUNT_ID", "owner", "anon", "plan", "ip", "attrs", "unused"]
    item = group(
        key="m_id",
        group_id="account_id",
        user_id="owner",
        anonymous_id="anon",
        traits={"plan": {"column": "plan", "nulls": "send"}, "kind": {"value": "b2b"}},
        mappings={"context.ip": "ip", "traits": "attrs"},
    )

    # When asked, Then the row hash covers exactly those, in model order and as the model spells them
    assert source_columns(item, columns) == ["m_id", "ACCOUNT_ID", "owner", "anon", "plan", "ip", "attrs"]
    # and with Sync All Properties, every column but segsync's own
    everything = group(sync_all_properties=True)
    assert source_columns(everything, [*columns, "__segsync_key_count"]) == columns


def test_source_columns_names_the_field_of_a_missing_column():
    with pytest.raises(ConfigError, match=r"sync 'users' field 'mappings\.context\.ip': column 'ip'"):
        source_columns(user(mappings={"context.ip": "ip"}), ["id"])


@pytest.mark.parametrize(
    "change",
    [
        {"null_values": "send"},
        {"normalization": "camelCase"},
        {"sync_all_properties": True},
        {"mappings": {"context.ip": "plan"}},
        {"traits": {"plan": {"column": "plan", "nulls": "send"}}},
        {"traits": {"tier": "plan"}},
    ],
)
def test_any_mapping_change_changes_the_fingerprint(change):
    # Given a sync, When one mapping setting changes, Then its fingerprint (seed of the row hash) changes
    assert mapping_fingerprint(user(traits={"plan": "plan"})) != mapping_fingerprint(
        user(**{"traits": {"plan": "plan"}, **change})
    )


def test_the_fingerprint_ignores_what_does_not_shape_a_message():
    # Given the same mapping with another model, schedule and cursor
    plain = track(properties={"total": "total"})
    moved = track(properties={"total": "total"}, model="SELECT * FROM v2", schedule="rate(1 hour)")

    # When fingerprinted, Then they agree (and a default spelled out is still the default)
    assert mapping_fingerprint(plain) == mapping_fingerprint(moved)
    assert mapping_fingerprint(plain) == mapping_fingerprint(track(properties={"total": "total"}, null_values="omit"))


@pytest.mark.parametrize(
    ("item", "columns", "field", "column"),
    [
        (group(group_id="acct"), GROUP_COLUMNS, "group_id", "acct"),
        (group(user_id="owner"), GROUP_COLUMNS, "user_id", "owner"),
        (user(mappings={"context.ip": "ip"}), ["id"], "mappings.context.ip", "ip"),
        (user(traits={"plan": {"column": "tier"}}), ["id"], "traits.plan", "tier"),
        (user(mappings={"traits": "attrs"}), ["id"], "mappings.traits", "attrs"),
    ],
)
def test_a_missing_column_in_any_new_field_is_a_config_error_naming_it(item, columns, field, column):
    with pytest.raises(ConfigError) as caught:
        Mapper(item, columns)
    assert f"sync '{item.name}' field '{field}': column '{column}' is not in the model's columns" in str(caught.value)

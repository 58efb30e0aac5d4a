"""Rows → Segment messages: exact payloads, stable messageIds, and a reason for every row not sent."""

import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync import __version__
from segsync.config import parse_sync
from segsync.errors import ConfigError
from segsync.mapping import Mapped, Mapper, as_id, row_message_id
from segsync.segment import MAX_MESSAGE_BYTES
from segsync.store import Rejection
from tests.rows import chunk_row, map_row

CONTEXT = {"library": {"name": "segsync", "version": __version__}}
MESSAGE_ID = re.compile(r"^segsync-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def user_sync(**overrides: Any):
    item = {
        "name": "users",
        "source": "warehouse",
        "destination": "segment",
        "model": "SELECT * FROM users",
        "object": "user",
        "key": "id",
        "traits": {"email": "email", "plan": "plan", "source": {"value": "warehouse"}},
    }
    return parse_sync({**item, **overrides})


def track_sync(**overrides: Any):
    item = {
        "name": "orders",
        "source": "warehouse",
        "destination": "segment",
        "model": "SELECT * FROM orders",
        "object": "track",
        "key": "order_id",
        "event": {"value": "Order Completed"},
        "user_id": "user_id",
        "timestamp": "placed_at",
        "properties": {"total": "total"},
    }
    return parse_sync({**item, **overrides})


USER_COLUMNS = ["id", "email", "plan"]
TRACK_COLUMNS = ["order_id", "user_id", "anonymous_id", "placed_at", "total", "event_name"]


def track_row(**values: Any) -> list[Any]:
    row = {
        "order_id": "o1",
        "user_id": "u1",
        "anonymous_id": None,
        "placed_at": "2026-03-01T10:30:05Z",
        "total": 12.34,
        "event_name": "Order Shipped",
    }
    row.update(values)
    return [row[column] for column in TRACK_COLUMNS]


def mapped(mapper: Mapper, row: list[Any]) -> dict[str, Any]:
    """Map a row that must be accepted, and return the message as Segment will read it."""
    result = map_row(mapper, row)
    assert isinstance(result, Mapped), result
    return orjson.loads(result.body)


def mapped_chunk(mapper: Mapper, row: list[Any]) -> dict[str, Any]:
    result = mapper.map(row)
    assert isinstance(result, Mapped), result
    return orjson.loads(result.body)


# --- golden payloads ---------------------------------------------------------------------------------


def test_user_row_becomes_an_identify_keyed_on_user_id():
    # Given a User sync mapping two columns and a constant, and a row whose plan is null
    mapper = Mapper(user_sync(), USER_COLUMNS)

    # When the row is mapped
    result = map_row(mapper, ["u1", "a@example.com", None])

    # Then it is exactly this identify: the null trait is left out (not sent as null, which would erase it)
    assert isinstance(result, Mapped)
    assert result.key == "u1"
    assert orjson.loads(result.body) == {
        "type": "identify",
        "userId": "u1",
        "traits": {"email": "a@example.com", "source": "warehouse"},
        "context": CONTEXT,
        # The planner's id for a first delivery (tests/rows.py: no hash delivered before, new hash 0…0)
        "messageId": "segsync-8fa3c05a-7279-5df0-bd44-c0850c4ef1f0",
    }


def test_user_sync_keyed_on_anonymous_id_sends_anonymous_id_and_no_user_id():
    # Given a User sync whose key is an anonymousId
    mapper = Mapper(user_sync(key_field="anonymousId"), USER_COLUMNS)

    # When a row is mapped
    message = mapped(mapper, ["anon-7", "b@example.com", "pro"])

    # Then the key travels as anonymousId
    assert message["anonymousId"] == "anon-7"
    assert "userId" not in message
    assert message["traits"] == {"email": "b@example.com", "plan": "pro", "source": "warehouse"}


def test_non_text_key_is_sent_as_its_json_text():
    # Given a numeric user key (an INTEGER id column)
    mapper = Mapper(user_sync(), USER_COLUMNS)

    # When mapped, Then userId is the string Segment expects
    assert mapped(mapper, [42, "c@example.com", None])["userId"] == "42"


def test_track_row_becomes_a_track_with_a_utc_millisecond_timestamp():
    # Given a Track sync with a constant event name, and a row with an offset timestamp
    mapper = Mapper(track_sync(), TRACK_COLUMNS)

    # When the row is mapped
    result = map_row(mapper, track_row(placed_at="2026-03-01T12:30:05.123456+02:00"))

    # Then it is exactly this track
    assert isinstance(result, Mapped)
    assert result.key == "o1"
    assert orjson.loads(result.body) == {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "timestamp": "2026-03-01T10:30:05.123+00:00",
        "properties": {"total": 12.34},
        "context": CONTEXT,
        # Pinned: if this id changes between releases, Segment sees every event as a new one.
        "messageId": "segsync-858b57dd-8b5c-58da-b6de-7780fb97b5cb",
    }


def test_track_event_name_can_come_from_a_column():
    # Given a Track sync whose event is a column
    mapper = Mapper(track_sync(event="event_name"), TRACK_COLUMNS)

    # When mapped, Then each row carries its own event name
    assert mapped(mapper, track_row(event_name="Order Refunded"))["event"] == "Order Refunded"


def test_track_with_only_an_anonymous_id_sends_no_user_id():
    # Given a Track sync identified by anonymous_id alone
    mapper = Mapper(track_sync(user_id=None, anonymous_id="anonymous_id"), TRACK_COLUMNS)

    # When mapped
    message = mapped(mapper, track_row(user_id="ignored", anonymous_id="anon-1"))

    # Then only anonymousId is set
    assert message["anonymousId"] == "anon-1"
    assert "userId" not in message


def test_track_with_both_identities_sends_both_and_tolerates_one_null():
    # Given a Track sync with both identity columns
    mapper = Mapper(track_sync(anonymous_id="anonymous_id"), TRACK_COLUMNS)

    # When rows with both, and with only the anonymous one, are mapped
    both = mapped(mapper, track_row(user_id="u1", anonymous_id="anon-1"))
    anonymous_only = mapped(mapper, track_row(user_id=None, anonymous_id="anon-1"))

    # Then each sends what it has
    assert (both["userId"], both["anonymousId"]) == ("u1", "anon-1")
    assert "userId" not in anonymous_only
    assert anonymous_only["anonymousId"] == "anon-1"


def test_track_without_a_timestamp_column_lets_segment_stamp_it():
    # Given a Track sync with no timestamp column, When mapped, Then no timestamp is sent
    mapper = Mapper(track_sync(timestamp=None), TRACK_COLUMNS)
    assert "timestamp" not in mapped(mapper, track_row())


@pytest.mark.parametrize(
    ("placed_at", "timestamp"),
    [
        pytest.param("2026-03-01T12:30:05.123456+02:00", "2026-03-01T10:30:05.123+00:00", id="ISO with offset"),
        pytest.param("2026-03-01T10:30:05Z", "2026-03-01T10:30:05.000+00:00", id="ISO with Z"),
        pytest.param("2026-03-01 10:30:05", "2026-03-01T10:30:05.000+00:00", id="naive ISO is UTC"),
        pytest.param(" 2026-03-01T10:30:05 ", "2026-03-01T10:30:05.000+00:00", id="surrounding spaces"),
        pytest.param("2026-03-01", "2026-03-01T00:00:00.000+00:00", id="a date is its midnight"),
        pytest.param(1772361005, "2026-03-01T10:30:05.000+00:00", id="epoch seconds"),
        pytest.param(1772361005.25, "2026-03-01T10:30:05.250+00:00", id="fractional epoch seconds"),
        pytest.param(1772361005123, "2026-03-01T10:30:05.123+00:00", id="epoch milliseconds"),
        pytest.param(0, "1970-01-01T00:00:00.000+00:00", id="the epoch itself"),
    ],
)
def test_timestamps_are_normalized_to_utc_iso_with_milliseconds(placed_at, timestamp):
    # Given a Track row whose timestamp column holds one of the forms warehouses produce
    mapper = Mapper(track_sync(), TRACK_COLUMNS)

    # When mapped, Then Segment receives one unambiguous UTC form
    assert mapped(mapper, track_row(placed_at=placed_at))["timestamp"] == timestamp


# --- messageIds ------------------------------------------------------------------------------------


def test_a_resend_of_the_same_planned_row_keeps_its_message_id():
    # Given one planned row (key, hash delivered last, new hash), planned again after a lost run
    first = row_message_id(user_sync(), "u1", "a" * 32, "b" * 32, None)
    again = row_message_id(user_sync(), "u1", "a" * 32, "b" * 32, None)

    # Then its id is the same, so Segment drops the copy
    assert first == again
    assert MESSAGE_ID.match(first)
    assert len(first) <= 100


def test_a_value_that_changes_and_changes_back_is_three_messages():
    # Given a plan free → pro → free over three runs (hashes F, P, F; each run sees the last delivered)
    free, pro = "f" * 32, "e" * 32
    ids = [
        row_message_id(user_sync(), "u1", None, free, None),
        row_message_id(user_sync(), "u1", free, pro, None),
        row_message_id(user_sync(), "u1", pro, free, None),
    ]

    # Then the third message does not reuse the first one's id (Segment would drop it for ~24 h)
    assert len(set(ids)) == 3


def test_a_full_resync_sends_identifies_under_ids_of_its_own_run():
    # Given a row already delivered with the same content
    delivered = row_message_id(user_sync(), "u1", None, "b" * 32, None)

    # When two full resyncs send it again
    resync_1 = row_message_id(user_sync(), "u1", "b" * 32, "b" * 32, "run-1")
    resync_2 = row_message_id(user_sync(), "u1", "b" * 32, "b" * 32, "run-2")

    # Then each resync's copy is new to Segment (it is a deliberate resend), and stable within its run
    assert len({delivered, resync_1, resync_2}) == 3
    assert resync_1 == row_message_id(user_sync(), "u1", "b" * 32, "b" * 32, "run-1")


def test_track_message_id_depends_only_on_the_sync_and_the_event_key():
    # Given the same event key with different content, a full resync, and another key
    original = row_message_id(track_sync(), "o1", None, "a" * 32, None)
    corrected = row_message_id(track_sync(), "o1", "a" * 32, "b" * 32, None)
    resynced = row_message_id(track_sync(), "o1", "b" * 32, "b" * 32, "run-1")

    # Then they share an id: an event is sent once, never appended twice
    assert original == corrected == resynced
    assert original != row_message_id(track_sync(), "o2", None, "a" * 32, None)


def test_two_syncs_never_share_a_message_id_for_the_same_key():
    # Given two syncs of each object over the same key and hashes
    ids = {
        row_message_id(user_sync(name="users"), "u1", None, "a" * 32, None),
        row_message_id(user_sync(name="users_eu"), "u1", None, "a" * 32, None),
        row_message_id(track_sync(name="orders"), "u1", None, "a" * 32, None),
        row_message_id(track_sync(name="refunds"), "u1", None, "a" * 32, None),
    }

    # Then each sync has its own id, so Segment never drops one sync's message as another's duplicate
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("value", "text"),
    [(42, "42"), (7.0, "7"), (-0.0, "0"), (0.1, "0.1"), (1.5e-07, "1.5e-07"), (2.0**60, "1.152921504606847e+18"),
     ("u-1", "u-1"), (True, "true")],
)  # fmt: skip
def test_an_id_column_prints_as_the_warehouse_prints_a_key_of_its_value(value, text):
    # Given an id column's value as a chunk carries it (a DECIMAL(18,0) 7 travels as 7.0)
    # When it becomes a userId, Then it reads as the key text rules write it: "7", never "7.0"
    assert as_id(value) == text


def test_the_message_carries_the_id_the_planner_wrote():
    # Given a chunk row whose messageId the planner wrote
    mapper = Mapper(user_sync(), USER_COLUMNS)
    row = chunk_row(mapper, ["u1", "a@example.com", "pro"])
    row[1] = "segsync-00000000-0000-5000-8000-000000000000"

    # When mapped, Then the message keeps it as it is: the sender never derives an id of its own
    assert mapped_chunk(mapper, row)["messageId"] == "segsync-00000000-0000-5000-8000-000000000000"


# --- columns -----------------------------------------------------------------------------------------


def test_columns_are_found_case_insensitively_as_snowflake_upper_cases_them():
    # Given a lower-case sync and a Snowflake result with upper-case column names
    mapper = Mapper(user_sync(), ["ID", "EMAIL", "PLAN"])

    # When a row is mapped, Then the lower-case names found their columns
    message = mapped(mapper, ["u1", "a@example.com", "pro"])
    assert message["userId"] == "u1"
    assert message["traits"] == {"email": "a@example.com", "plan": "pro", "source": "warehouse"}


def test_an_exact_column_match_wins_over_a_case_insensitive_one():
    # Given columns that differ only in case
    mapper = Mapper(user_sync(traits={"email": "Email"}), ["id", "email", "Email"])

    # When mapped, Then the exactly named column is used
    assert mapped(mapper, ["u1", "lower", "exact"])["traits"] == {"email": "exact"}


@pytest.mark.parametrize(
    ("sync", "field", "column"),
    [
        (user_sync(key="user_key"), "key", "user_key"),
        (user_sync(traits={"email": "e_mail"}), "traits.email", "e_mail"),
        (track_sync(event="event_type"), "event", "event_type"),
        (track_sync(user_id="uid"), "user_id", "uid"),
        (track_sync(anonymous_id="anon"), "anonymous_id", "anon"),
        (track_sync(timestamp="created_at"), "timestamp", "created_at"),
        (track_sync(properties={"total": "amount"}), "properties.total", "amount"),
    ],
)
def test_unknown_column_is_a_config_error_naming_sync_field_and_column(sync, field, column):
    # Given a sync naming a column the model does not return
    columns = USER_COLUMNS if sync.object == "user" else TRACK_COLUMNS

    # When the mapper is built
    with pytest.raises(ConfigError) as caught:
        Mapper(sync, columns)

    # Then the error says which sync, which field and which column, and lists the columns there are
    message = str(caught.value)
    assert f"sync '{sync.name}' field '{field}'" in message
    assert f"column '{column}' is not in the model's columns" in message
    assert ", ".join(columns) in message


# --- rejections --------------------------------------------------------------------------------------


def test_null_key_is_rejected_without_a_key():
    # Given a user row whose key is null, When mapped
    result = map_row(Mapper(user_sync(), USER_COLUMNS), [None, "a@example.com", "pro"])

    # Then it is rejected on its key, naming the column
    assert result == Rejection(None, "key", "key column 'id' is null")


@pytest.mark.parametrize("event_name", ["", "   ", None, 42])
def test_missing_or_empty_event_name_is_rejected(event_name):
    # Given a Track row whose event column is empty, blank, null or not text
    mapper = Mapper(track_sync(event="event_name"), TRACK_COLUMNS)

    # When mapped
    result = map_row(mapper, track_row(event_name=event_name))

    # Then it is rejected on the event field
    assert isinstance(result, Rejection)
    assert (result.key, result.field) == ("o1", "event")
    assert result.reason


def test_a_null_timestamp_is_rejected_rather_than_stamped_with_the_receive_time():
    # Given a Track row whose event time is null, When mapped
    result = map_row(Mapper(track_sync(), TRACK_COLUMNS), track_row(placed_at=None))

    # Then it is rejected naming the column (Segment would otherwise date it "now")
    assert result == Rejection("o1", "timestamp", "timestamp column 'placed_at' is null")


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_is_rejected(key):
    # Given a user row whose key is empty text, When mapped, Then it is rejected on the key
    result = map_row(Mapper(user_sync(), USER_COLUMNS), [key, "a@example.com", "pro"])
    assert result == Rejection(key, "key", "key column 'id' is empty")


def test_track_with_both_identities_null_is_rejected():
    # Given a Track row with neither a userId nor an anonymousId
    mapper = Mapper(track_sync(anonymous_id="anonymous_id"), TRACK_COLUMNS)

    # When mapped
    result = map_row(mapper, track_row(user_id=None, anonymous_id=None))

    # Then Segment is spared a message it would refuse
    assert result == Rejection("o1", "userId", "both userId and anonymousId are null or empty")


@pytest.mark.parametrize("placed_at", ["yesterday", "", "2026-13-45", True, False, [2026], float("nan"), 10**20])
def test_unreadable_timestamp_is_rejected_quoting_the_value(placed_at):
    # Given a Track row whose timestamp cannot be read
    mapper = Mapper(track_sync(), TRACK_COLUMNS)

    # When mapped
    result = map_row(mapper, track_row(placed_at=placed_at))

    # Then it is rejected on the timestamp, quoting what was found
    assert isinstance(result, Rejection)
    assert (result.key, result.field) == ("o1", "timestamp")
    assert repr(placed_at) in result.reason


def test_message_over_32_kb_is_rejected_with_its_size():
    # Given a user whose traits make the message larger than Segment's 32 KB limit
    mapper = Mapper(user_sync(), USER_COLUMNS)

    # When mapped
    result = map_row(mapper, ["u1", "x" * MAX_MESSAGE_BYTES, "pro"])

    # Then it is rejected on the message, saying how big it was
    assert isinstance(result, Rejection)
    assert (result.key, result.field) == ("u1", "message")
    assert "32 KB" in result.reason
    assert re.search(r"\d{2},\d{3} bytes", result.reason)


def test_message_just_under_32_kb_is_sent():
    # Given a trait sized so the whole message is exactly at the limit
    mapper = Mapper(user_sync(), USER_COLUMNS)
    overhead = len(map_row(mapper, ["u1", "", "pro"]).body)

    # When mapped, Then it is accepted at the limit and refused one byte over
    at_limit = map_row(mapper, ["u1", "x" * (MAX_MESSAGE_BYTES - overhead), "pro"])
    assert isinstance(at_limit, Mapped)
    assert len(at_limit.body) == MAX_MESSAGE_BYTES
    assert isinstance(map_row(mapper, ["u1", "x" * (MAX_MESSAGE_BYTES - overhead + 1), "pro"]), Rejection)


# --- any row: a message or a reason, never an exception -------------------------------------------

PROPERTY_COLUMNS = ["k", "event", "uid", "aid", "ts", "p1", "p2"]

# Rows as a sender sees them: decoded from a chunk's JSON. orjson turns integers beyond 64 bits into
# floats on the way in, so none reach the mapper.
cell = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(["2026-03-01T10:30:05+02:00", "2026-03-01", "Order Completed", " ", ""]),
    st.builds(lambda char, n: char * n, st.characters(), st.integers(5_000, 20_000)),
)

property_syncs = st.sampled_from(
    [
        user_sync(key="k", traits={"a": "p1", "b": "p2", "c": {"value": "constant"}}),
        user_sync(key="k", key_field="anonymousId", traits={"a": "P1", "event": "event"}),
        track_sync(key="k", event="event", user_id="uid", timestamp="ts", properties={"a": "p1", "b": "p2"}),
        track_sync(
            key="k",
            event={"value": "E"},
            user_id=None,
            anonymous_id="aid",
            timestamp=None,
            properties={"a": "p1"},
        ),
        track_sync(key="k", event="event", user_id="uid", anonymous_id="aid", timestamp="ts", properties={}),
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sync=property_syncs, row=st.lists(cell, min_size=len(PROPERTY_COLUMNS), max_size=len(PROPERTY_COLUMNS)))
def test_any_row_maps_to_a_valid_message_or_a_reasoned_rejection(sync, row):
    # Given any sync and any row of JSON-like values
    mapper = Mapper(sync, PROPERTY_COLUMNS)

    # When it is mapped (this must not raise)
    result = map_row(mapper, row)

    # Then a rejection always says which field and why
    if isinstance(result, Rejection):
        assert result.field
        assert result.reason
        return
    # and a message is JSON within Segment's size limit, with a type, an id and an identity
    assert isinstance(result, Mapped)
    assert len(result.body) <= MAX_MESSAGE_BYTES
    message = orjson.loads(result.body)
    assert message["type"] == ("identify" if sync.object == "user" else "track")
    assert MESSAGE_ID.match(message["messageId"])
    identities = [message[field] for field in ("userId", "anonymousId") if field in message]
    assert identities
    assert all(isinstance(identity, str) for identity in identities)
    if sync.object == "user":
        assert message[sync.key_field] == result.key
    else:
        assert isinstance(message["event"], str)
        assert message["event"].strip()


@pytest.mark.parametrize("name", ["identify:u1:abc", "track:evt_1", "", "ünïcødé:ключ"])
def test_the_fast_message_id_is_exactly_uuid5(name):
    # Given a sync namespace, When an id is built the fast way, Then it is uuid5's, character for character
    import uuid

    from segsync.mapping import message_id, sync_namespace

    namespace = sync_namespace("demo-users")
    assert message_id(namespace.bytes, name) == f"segsync-{uuid.uuid5(namespace, name)}"

"""Properties for any row and any mapping: a message that passes the Segment spec, or a reasoned rejection."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from segsync.config import parse_sync
from segsync.mapping import Mapped, Mapper, as_id, normalize, words
from segsync.store import Rejection
from tests.rows import map_row
from tests.segment_spec import problems

COLUMNS = ["k", "event", "uid", "aid", "ts", "gid", "p1", "p2", "obj", "flag"]
BASE = {"source": "warehouse", "destination": "segment", "model": "SELECT 1"}
MESSAGE_TYPES = {"user": "identify", "group": "group", "track": "track"}

SYNCS = [
    parse_sync({**BASE, **item})
    for item in [
        {
            "name": "users",
            "object": "user",
            "key": "k",
            "traits": {"a": "p1", "b": {"column": "p2", "nulls": "send"}, "c": {"value": None}},
            "mappings": {"context.ip": "uid", "integrations.Mixpanel": "flag", "traits.nested.deep": "obj"},
        },
        {
            "name": "users-all",
            "object": "user",
            "key": "k",
            "key_field": "anonymousId",
            "sync_all_properties": True,
            "normalization": "camelCase",
            "null_values": "send",
        },
        {
            "name": "users-json",
            "object": "user",
            "key": "k",
            "mappings": {"traits": "obj", "context": "p1", "integrations": "p2"},
        },
        {
            "name": "accounts",
            "object": "group",
            "key": "k",
            "group_id": "gid",
            "user_id": "uid",
            "anonymous_id": "aid",
            "traits": {"plan": "p1"},
            "mappings": {"traits": "obj", "context.traits.email": "p2"},
        },
        {
            "name": "accounts-all",
            "object": "group",
            "key": "gid",
            "anonymous_id": "aid",
            "sync_all_properties": True,
            "normalization": "Title Case",
        },
        {
            "name": "orders",
            "object": "track",
            "key": "k",
            "event": "event",
            "user_id": "uid",
            "anonymous_id": "aid",
            "timestamp": "ts",
            "mappings": {"properties": "obj", "properties.order.total": "p1", "integrations.All": "flag"},
        },
        {
            "name": "orders-all",
            "object": "track",
            "key": "k",
            "event": {"value": "Order Completed"},
            "user_id": "uid",
            "sync_all_properties": True,
            "normalization": "snake_case",
        },
    ]
]

# Rows as a sender sees them, decoded from a chunk's JSON: every JSON value, plus the strings that
# matter (timestamps, JSON text for VARIANT columns, blanks) and values big enough to hit 32 KB.
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
specials = st.sampled_from(
    [
        "2026-03-01T10:30:05+02:00",
        "2026-03-01",
        "Order Completed",
        " ",
        "",
        '{"plan": "pro", "ip": "203.0.113.9"}',
        '{"broken": ',
        "[1, 2]",
        "null",
        1772361005123,
    ]
)
big = st.one_of(
    st.builds(lambda char, n: char * n, st.characters(), st.integers(5_000, 20_000)),
    st.builds(lambda n: {f"p{i}": i for i in range(n)}, st.integers(0, 3_000)),
)
# Mostly plain values, so most rows map and the spec check has messages to judge; the odd big one.
cell = st.one_of(json_scalar, st.text(min_size=1, max_size=12), json_value, specials, specials, big)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sync=st.sampled_from(SYNCS), row=st.lists(cell, min_size=len(COLUMNS), max_size=len(COLUMNS)))
def test_any_row_maps_to_a_message_that_passes_the_spec_or_to_a_rejection_with_a_reason(sync, row):
    # Given any sync and any row of JSON values, When it is mapped (this must not raise)
    result = map_row(Mapper(sync, COLUMNS), row)
    event("rejected" if isinstance(result, Rejection) else "mapped")

    # Then a rejection says which field and why
    if isinstance(result, Rejection):
        event(f"rejected on {result.field}")
        assert isinstance(result.field, str) and result.field
        assert isinstance(result.reason, str) and result.reason
        return
    # and a message passes an independent reading of Segment's spec, as the sync's call type
    assert isinstance(result, Mapped)
    message = orjson.loads(result.body)
    assert problems(message) == []
    assert message["type"] == MESSAGE_TYPES[sync.object]
    assert result.key == as_id(row[COLUMNS.index(sync.key)])  # the key text tests/rows.py gave the chunk
    assert message["context"]["library"]["name"] == "segsync"


@settings(max_examples=60, deadline=None)
@given(sync=st.sampled_from(SYNCS), row=st.lists(json_value, min_size=len(COLUMNS), max_size=len(COLUMNS)))
def test_mapping_is_deterministic_and_leaves_the_row_as_it_was(sync, row):
    # Given a row, When it is mapped twice by two mappers (two runs, or a redelivered chunk)
    snapshot = orjson.dumps(row)
    first, second = map_row(Mapper(sync, COLUMNS), row), map_row(Mapper(sync, COLUMNS), row)

    # Then both give the same message or rejection, and the row is unchanged
    assert first == second
    assert orjson.dumps(row) == snapshot


names = st.text(alphabet="abcXYZ019_ -", max_size=16)


@given(name=names, style=st.sampled_from(["snake_case", "Title Case", "lowercase"]))
def test_normalizing_a_normalized_name_changes_nothing(name, style):
    # (Not so for camelCase and PascalCase: "a_b_c" → "aBC", whose words are a, BC.)
    once = normalize(name, style)
    assert normalize(once, style) == once


@given(name=names)
def test_normalized_names_keep_every_letter_and_digit(name):
    letters = "".join(c for c in name.lower() if c.isalnum())
    assert "".join(words(name)).lower() == letters
    for style in ("snake_case", "camelCase", "PascalCase", "Title Case"):
        if letters:
            assert "".join(c for c in normalize(name, style).lower() if c.isalnum()) == letters

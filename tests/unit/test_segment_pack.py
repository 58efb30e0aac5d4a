"""pack(): batches whose real request body fits Segment's limits, in order, nothing lost."""

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.segment import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, batch_body, pack

SENT_AT = "2026-11-29T01:02:03.456+00:00"


def message(index: int, size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (or the smallest possible) that carries its index."""
    head = f'{{"i":{index},"p":"'.encode()
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


def body_size(batch: list[bytes]) -> int:
    return len(batch_body(batch, SENT_AT))


# Runs of equal-sized messages: small runs reach the 2,500-message limit, large ones the byte limit.
runs = st.lists(
    st.tuples(
        st.one_of(st.integers(1, 200), st.integers(200, MAX_MESSAGE_BYTES)),
        st.integers(1, 3_000),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(runs=runs)
def test_every_batch_fits_segment_limits_and_keeps_every_message_in_order(runs):
    # Given a stream of messages of mixed sizes (each run held to ~1.5 MB to keep the test fast)
    sizes = [size for size, repeat in runs for _ in range(min(repeat, 1_500_000 // size))]
    messages = [message(i, size) for i, size in enumerate(sizes)]

    # When they are packed
    batches = list(pack(iter(messages)))

    # Then each real body is within the limits, no batch is empty, and concatenation gives the input back
    assert all(0 < len(b) <= MAX_BATCH_MESSAGES for b in batches)
    assert all(body_size(b) <= MAX_BATCH_BYTES for b in batches)
    assert list(itertools.chain.from_iterable(batches)) == messages
    # and a batch is only closed when the next message would not have fitted
    for batch, following in itertools.pairwise(batches):
        assert len(batch) == MAX_BATCH_MESSAGES or body_size([*batch, following[0]]) > MAX_BATCH_BYTES


def test_body_of_exactly_the_byte_limit_stays_one_batch_and_one_byte_more_spills():
    # Given 14 maximal messages plus one that brings the real body to exactly MAX_BATCH_BYTES
    full = [message(i, MAX_MESSAGE_BYTES) for i in range(14)]
    last_size = MAX_BATCH_BYTES - body_size(full) - 1  # minus the comma before it
    exact = [*full, message(14, last_size)]
    assert body_size(exact) == MAX_BATCH_BYTES

    # When packed as is, and with the last message one byte longer
    fits = list(pack(exact))
    spills = list(pack([*full, message(14, last_size + 1)]))

    # Then the first is a single batch and the second splits before the last message
    assert [len(b) for b in fits] == [15]
    assert [len(b) for b in spills] == [14, 1]


def test_count_limit_closes_a_batch_at_exactly_2500_messages():
    # Given 2,501 tiny messages
    messages = [message(i, 10) for i in range(MAX_BATCH_MESSAGES + 1)]

    # When packed
    batches = list(pack(messages))

    # Then the limit is met exactly, not one short
    assert [len(b) for b in batches] == [MAX_BATCH_MESSAGES, 1]


def test_pack_streams_without_reading_the_whole_input():
    # Given an endless stream of messages
    endless = (message(i, 50) for i in itertools.count())

    # When the first batch is taken
    first = next(pack(endless))

    # Then it arrives full, without waiting for an end that never comes
    assert len(first) == MAX_BATCH_MESSAGES


def test_message_at_the_size_limit_is_accepted_and_one_byte_over_is_refused():
    # Given a message of exactly 32,768 bytes and one a byte longer
    at_limit = message(0, MAX_MESSAGE_BYTES)
    over = message(1, MAX_MESSAGE_BYTES + 1)

    # When packed, Then the first passes and the second raises, naming the limit
    assert list(pack([at_limit])) == [[at_limit]]
    with pytest.raises(ValueError, match="32768"):
        list(pack([at_limit, over]))


def test_no_messages_give_no_batches():
    # Given nothing to send, When packed, Then no (empty) request is produced
    assert list(pack([])) == []


def test_body_is_the_documented_batch_json():
    # Given two serialized messages
    messages = [orjson.dumps({"type": "track", "event": "A"}), orjson.dumps({"type": "identify"})]

    # When the body is assembled
    body = orjson.loads(batch_body(messages, SENT_AT))

    # Then it is Segment's batch shape with the messages untouched
    assert body == {"batch": [{"type": "track", "event": "A"}, {"type": "identify"}], "sentAt": SENT_AT}

"""Chunks: warehouse rows survive the trip to the sender exactly, in bodies SQS will take."""

import base64
import datetime as dt
import gzip
import random
import string
import uuid
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.chunks import (
    COMPRESS_OVER_BYTES,
    FORMAT_VERSION,
    GZIP_PREFIX,
    Chunk,
    Chunker,
    decode,
    dump_row,
    encode,
    header,
)

SYNC = {"name": "users", "object": "user", "key": "id", "traits": {"email": "email"}}
DESTINATION = {"type": "segment", "region": "us", "write_key": {"env": "SEGMENT_WRITE_KEY"}}
COLUMNS = ["id", "email"]
HEADER = header(SYNC, DESTINATION, COLUMNS)


NOISE_ALPHABET = "".join(c for c in string.ascii_letters + string.digits + string.punctuation if c not in '"\\')


def rows_of(count: int, width: int = 10) -> list[list]:
    """Rows of repetitive text: they compress well."""
    return [[f"user-{i}", f"{i}-" + "x" * width] for i in range(count)]


def noisy_rows(count: int, width: int) -> list[list]:
    """Rows of random printable text (seeded): gzip + base64 makes them bigger, not smaller."""
    noise = random.Random(count * width)
    return [[f"user-{i}", "".join(noise.choices(NOISE_ALPHABET, k=width))] for i in range(count)]


# --- encode / decode --------------------------------------------------------------------------------


def test_small_chunk_is_plain_json_and_decodes_to_what_was_encoded():
    # Given two short rows
    rows = [["u1", "a@example.com"], ["u2", None]]

    # When encoded
    body = encode("run-1", 7, HEADER, [dump_row(r) for r in rows])

    # Then the body is readable JSON (under the compression threshold) and decodes to the same chunk
    assert not body.startswith(GZIP_PREFIX)
    assert orjson.loads(body)["v"] == FORMAT_VERSION
    assert decode(body) == Chunk(
        run_id="run-1", number=7, sync=SYNC, destination=DESTINATION, columns=COLUMNS, rows=rows
    )


def test_large_repetitive_chunk_is_gzipped_and_base64_encoded_and_decodes_the_same():
    # Given many similar rows, well over the compression threshold
    rows = rows_of(200, width=50)

    # When encoded
    body = encode("run-1", 1, HEADER, [dump_row(r) for r in rows])

    # Then it is the compressed form, smaller than the plain JSON, and decodes to the same rows
    assert body.startswith(GZIP_PREFIX)
    plain = gzip.decompress(base64.b64decode(body[len(GZIP_PREFIX) :]))
    assert len(plain) > COMPRESS_OVER_BYTES
    assert len(body) < len(plain)
    chunk = decode(body)
    assert (chunk.run_id, chunk.number, chunk.columns, chunk.rows) == ("run-1", 1, COLUMNS, rows)


def test_large_chunk_that_does_not_compress_stays_plain():
    # Given rows of random text, over the compression threshold, that gzip + base64 would only grow
    rows = noisy_rows(20, width=500)

    # When encoded
    body = encode("r", 1, HEADER, [dump_row(r) for r in rows])

    # Then the plain form is kept, being the smaller, and it decodes back
    assert len(body) > COMPRESS_OVER_BYTES
    assert not body.startswith(GZIP_PREFIX)
    assert decode(body).rows == rows


def test_chunk_with_no_rows_round_trips():
    # Given no rows, When encoded and decoded, Then the chunk is empty but complete
    assert decode(encode("r", 1, HEADER, [])).rows == []


@pytest.mark.parametrize("version", [0, 1, "2", None])
def test_decode_refuses_a_body_of_another_format_version(version):
    # Given a chunk body written by another format version
    body = orjson.dumps({"v": version, "run": "r", "n": 1, "sync": {}, "dest": {}, "cols": [], "rows": []})

    # When decoded, Then it is refused rather than misread
    with pytest.raises(ValueError, match="unknown format version"):
        decode(body.decode())


@pytest.mark.parametrize("body", ["[]", '"text"', "{}", "not json at all"])
def test_decode_refuses_what_is_not_a_chunk(body):
    # Given a message that is not a chunk, When decoded, Then a ValueError says so
    with pytest.raises(ValueError):
        decode(body)


# --- values from the warehouse ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "json"),
    [
        pytest.param(Decimal("12.34"), b"12.34", id="money stays a number"),
        pytest.param(Decimal("12.340"), b"12.34", id="trailing zeros are the same number"),
        pytest.param(Decimal("-0.5"), b"-0.5", id="negative"),
        pytest.param(Decimal("100"), b"100.0", id="integral decimal"),
        pytest.param(
            Decimal("12345678901234567890.12"),
            b'"12345678901234567890.12"',
            id="more digits than a float: string",
        ),
        pytest.param(Decimal("0.1000000000000000055511151231257827"), b'"0.1000000000000000055511151231257827"'),
        pytest.param(Decimal("1E+400"), b'"1E+400"', id="beyond float range: string"),
        pytest.param(Decimal("NaN"), b"null", id="NaN is null"),
        pytest.param(Decimal("Infinity"), b"null", id="infinity is null"),
        pytest.param(b"\x00\xff\x10", b'"AP8Q"', id="bytes are base64"),
        pytest.param(bytearray(b"hi"), b'"aGk="', id="bytearray is base64"),
        pytest.param(memoryview(b"hi"), b'"aGk="', id="memoryview is base64"),
        pytest.param(dt.datetime(2026, 3, 1, 12, 30, 5), b'"2026-03-01T12:30:05+00:00"', id="naive datetime is UTC"),
        pytest.param(
            dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            b'"2026-03-01T10:30:05+00:00"',
            id="aware datetime is converted to UTC",
        ),
        pytest.param(dt.date(2026, 3, 1), b'"2026-03-01"', id="date"),
        pytest.param(
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            b'"12345678-1234-5678-1234-567812345678"',
            id="uuid",
        ),
        pytest.param(dt.timedelta(minutes=1, milliseconds=5), b"60.005", id="timedelta is seconds"),
        pytest.param((1, "a"), b'[1,"a"]', id="tuple is a list"),
        pytest.param(frozenset({3}), b"[3]", id="frozenset is a list"),
    ],
)
def test_warehouse_values_become_json_segment_accepts(value, json):
    # Given a row holding one warehouse value, When serialized, Then it is the expected JSON
    assert dump_row([value]) == b"[" + json + b"]"


def test_decimal_kept_as_a_string_keeps_every_digit_through_a_chunk():
    # Given a NUMBER(38, 2) that no float can hold
    amount = Decimal("123456789012345678901234567890123456.78")

    # When it travels in a chunk
    rows = decode(encode("r", 1, HEADER, [dump_row(["u1", amount])])).rows

    # Then the sender reads back the exact digits
    assert Decimal(rows[0][1]) == amount


def test_value_of_an_unknown_type_is_refused_with_its_type_name():
    # Given a value no JSON can carry
    class Geometry:
        pass

    # When serialized, Then a TypeError (the planner's cue to reject the row) is raised
    with pytest.raises(TypeError, match="not JSON serializable"):
        dump_row(["u1", Geometry()])


# --- cutting rows into chunks -----------------------------------------------------------------------


def cut(rows: list[list], **limits) -> list[tuple[int, int, str]]:
    chunker = Chunker(run_id="run-1", header=HEADER, **limits)
    return list(chunker.chunks(dump_row(r) for r in rows))


def test_rows_are_cut_by_row_count():
    # Given 25 small rows and at most 10 rows per chunk
    rows = rows_of(25)

    # When cut
    chunks = cut(rows, max_rows=10, max_body_bytes=1_000_000)

    # Then the chunks hold 10, 10 and 5 rows, numbered from 1, in order
    assert [(number, count) for number, count, _ in chunks] == [(1, 10), (2, 10), (3, 5)]
    assert [row for _, _, body in chunks for row in decode(body).rows] == rows


def test_rows_are_cut_by_encoded_body_bytes():
    # Given 100 rows of ~1 KB of incompressible text and a 10 KB body limit
    rows = noisy_rows(100, width=1_000)

    # When cut with a generous row limit
    chunks = cut(rows, max_rows=1_000, max_body_bytes=10_000)

    # Then every body fits, the numbers run 1, 2, 3… and no row is lost, duplicated or reordered
    assert len(chunks) > 1
    assert all(len(body.encode()) <= 10_000 for _, _, body in chunks)
    assert [number for number, _, _ in chunks] == list(range(1, len(chunks) + 1))
    assert [row for _, _, body in chunks for row in decode(body).rows] == rows
    assert all(decode(body).number == number for number, _, body in chunks)


def test_chunk_numbers_continue_across_calls_on_the_same_chunker():
    # Given one chunker used for two streams of rows
    chunker = Chunker(run_id="r", header=HEADER, max_rows=2, max_body_bytes=1_000_000)

    # When both are cut
    first = [n for n, _, _ in chunker.chunks(dump_row(r) for r in rows_of(3))]
    second = [n for n, _, _ in chunker.chunks(dump_row(r) for r in rows_of(3))]

    # Then numbering carries on, so no two chunks of a run share a number
    assert (first, second) == ([1, 2], [3, 4])


def test_no_rows_give_no_chunks():
    # Given nothing to send, When cut, Then no (empty) chunk is queued
    assert cut([], max_rows=10, max_body_bytes=100_000) == []


def test_a_single_row_bigger_than_the_body_limit_is_still_emitted_alone():
    # Given one row larger than the body limit (the planner caps rows well below the SQS limit)
    rows = [["small", "x"], *noisy_rows(1, width=5_000), ["small2", "y"]]

    # When cut
    chunks = cut(rows, max_rows=100, max_body_bytes=1_000)

    # Then it travels alone rather than being dropped or looping forever
    assert [decode(body).rows for _, _, body in chunks] == [[rows[0]], [rows[1]], [rows[2]]]


row_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(row_values, min_size=2, max_size=2), max_size=120),
    max_rows=st.integers(1, 50),
    max_body_bytes=st.integers(1_500, 20_000),
    max_raw_bytes=st.integers(200, 50_000),
)
def test_chunker_keeps_every_row_once_in_order_within_both_limits(rows, max_rows, max_body_bytes, max_raw_bytes):
    # Given arbitrary rows (unicode text included) and arbitrary limits
    encoded = [dump_row(r) for r in rows]
    single_row_bodies = [len(encode("run-1", 1, HEADER, [e]).encode()) for e in encoded]

    # When the rows are cut into chunks
    chunks = cut(rows, max_rows=max_rows, max_body_bytes=max_body_bytes, max_raw_bytes=max_raw_bytes)

    # Then numbers run from 1 without gaps, and each chunk respects the row limit
    assert [number for number, _, _ in chunks] == list(range(1, len(chunks) + 1))
    assert all(1 <= count <= max_rows for _, count, _ in chunks)
    # and each body fits in bytes, unless it is one row that could never fit
    for _, count, body in chunks:
        assert len(body.encode()) <= max_body_bytes or count == 1
    # and concatenating the decoded chunks gives back every row exactly once, in order
    decoded = [decode(body) for _, _, body in chunks]
    assert [len(c.rows) for c in decoded] == [count for _, count, _ in chunks]
    assert [row for c in decoded for row in c.rows] == orjson.loads(b"[" + b",".join(encoded) + b"]")
    assert all(c.columns == COLUMNS and c.run_id == "run-1" for c in decoded)
    # (a row alone over the limit is the only excuse for an oversized body)
    oversized = [body for _, count, body in chunks if len(body.encode()) > max_body_bytes]
    assert len(oversized) <= sum(size > max_body_bytes for size in single_row_bodies)

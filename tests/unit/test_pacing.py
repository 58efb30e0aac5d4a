"""Chunks cut to the release schedule: at most one second of the pace, so a sender sends each in one go."""

from __future__ import annotations

import pytest

from segsync.pacing import RELEASE_STEP_S, SENDER_BATCH_SIZE, SENDER_TIMEOUT_S, chunk_rows, destination_pace


def test_at_segments_pace_chunks_keep_their_configured_size():
    # Given Segment's 1,000 events/s, When / Then a chunk may hold the planner's 1,000 rows (one second of it)
    assert chunk_rows(1_000, 1_000, ceiling=1_000) == 1_000


@pytest.mark.parametrize(
    ("events_per_second", "cap", "rows"),
    [(100, None, 100), (1_000, 50, 50), (10, 1_000, 10), (1, None, 1)],
)
def test_a_slow_pace_gets_chunks_of_one_second_of_it(events_per_second, cap, rows):
    # Given a pace slower than the configured chunk (a low destination pace or a low stack cap)
    # When the planner cuts chunks, Then each holds one release step of the pace (never less than a row)
    assert chunk_rows(events_per_second, cap, ceiling=1_000) == rows == destination_pace(events_per_second, cap)


def test_the_stack_cap_only_ever_lowers_a_destinations_pace():
    assert (destination_pace(1_000, None), destination_pace(1_000, 400), destination_pace(300, 400)) == (
        1_000,
        400,
        300,
    )


def test_a_sender_handed_a_full_batch_at_once_delivers_it_at_the_pace_well_within_its_timeout():
    # Given a backlog: SENDER_BATCH_SIZE chunks of one release step each, found together
    # When the sender's guard holds it to the pace, Then the batch takes SENDER_BATCH_SIZE steps,
    # under half of the invocation's timeout (the rest covers requests, retries and backoff)
    assert SENDER_BATCH_SIZE * RELEASE_STEP_S <= SENDER_TIMEOUT_S / 2

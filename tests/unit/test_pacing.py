"""Chunks cut to the pace: one sender invocation always delivers its chunks before its timeout."""

from __future__ import annotations

import pytest

from segsync.errors import ConfigError
from segsync.pacing import PACED_SHARE, SENDER_BATCH_SIZE, SENDER_TIMEOUT_S, chunk_rows, sender_share


def test_at_the_default_pace_chunks_keep_their_configured_size():
    # Given Segment's 1,000 events/s shared by the template's default 5 senders
    # When / Then a chunk may hold the planner's 1,000 rows (5 chunks take 25 s of a 120 s invocation)
    assert chunk_rows(1_000, 1_000, 5, ceiling=1_000) == 1_000


@pytest.mark.parametrize(
    ("events_per_second", "cap", "concurrency"),
    [(100, None, 5), (1_000, 1_000, 1_000), (1_000, 50, 2), (10, 1_000, 1)],
)
def test_a_slow_pace_gets_chunks_one_invocation_can_deliver(events_per_second, cap, concurrency):
    # Given a pace slow for its senders (a low destination pace, a low cap, or many senders)
    rows = chunk_rows(events_per_second, cap, concurrency, ceiling=1_000)

    # When a sender gets a full batch of such chunks at its share of the pace
    seconds = SENDER_BATCH_SIZE * rows / sender_share(events_per_second, cap, concurrency)

    # Then it spends at most its paced share of the timeout waiting on the pace
    assert 1 <= rows < 1_000
    assert seconds <= SENDER_TIMEOUT_S * PACED_SHARE


def test_a_pace_too_slow_for_even_one_row_fails_the_run_saying_what_to_change():
    # Given 1 event/s shared by 1,000 senders, When / Then the planner refuses, naming both knobs
    with pytest.raises(ConfigError, match="raise events_per_second or lower SenderMaxConcurrency"):
        chunk_rows(1, None, 1_000, ceiling=1_000)

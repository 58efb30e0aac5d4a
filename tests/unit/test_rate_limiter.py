"""The sender's burst guard toward Segment: at most two seconds ahead of the pace; halved on 429, given back slowly.

The guard refills CATCH_UP times faster than the pace, so the expected waits below are worked out at that rate.
"""

from __future__ import annotations

import pytest

from segsync.config import SegmentConnection
from segsync.errors import DeliveryError
from segsync.sender import (
    BURST_S,
    CATCH_UP,
    MIN_EVENTS_PER_SECOND,
    RECOVERY_INTERVAL_S,
    RECOVERY_STEP,
    RateLimiter,
    Sender,
)

NO_DEADLINE = float("inf")


class FakeTime:
    """A clock that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def test_a_sender_goes_two_seconds_ahead_of_the_pace_at_most_then_keeps_to_it(fake):
    # Given 100 events/s (the guard refilled at 125: 0.4 s per batch of 50)
    limiter = RateLimiter(100, clock=fake.clock, sleep=fake.sleep)
    assert (BURST_S, CATCH_UP) == (2, 1.25)

    # When nine batches of 50 go out back to back
    for _ in range(9):
        limiter.acquire(50, NO_DEADLINE)

    # Then the first six go at once (two seconds ahead at most), and each next one waits its 0.4 s
    assert fake.slept == pytest.approx([0.4, 0.4, 0.4])


@pytest.mark.parametrize("jitter", [0.0, -0.2, 0.3])
def test_chunks_released_at_the_pace_go_out_at_once_every_time(fake, jitter):
    # Given Segment's 1,000 events/s and chunks of one second of it, released a second apart (give or take)
    limiter = RateLimiter(1_000, clock=fake.clock, sleep=fake.sleep)

    # When a sender gets each as it is released, for a minute
    for second in range(60):
        fake.now = 1_000.0 + second + (jitter if second % 2 else 0.0)
        limiter.acquire(1_000, NO_DEADLINE)

    # Then it never waits: the release schedule keeps the pace, the sender works and ends
    assert fake.slept == []


def test_chunks_picked_up_late_with_the_next_cost_no_waiting_then_or_afterwards(fake):
    # Given Segment's 1,000 events/s and chunks of one second of it, released a second apart
    limiter = RateLimiter(1_000, clock=fake.clock, sleep=fake.sleep)

    # When a sender gets the first three together, 2.2 s late (a cold start, a slow poll), then each next
    # one as it is released
    fake.now = 1_002.2
    for _ in range(3):
        limiter.acquire(1_000, NO_DEADLINE)
    for second in range(3, 60):
        fake.now = 1_000.0 + second
        limiter.acquire(1_000, NO_DEADLINE)

    # Then it never waits: the guard gets back on schedule instead of holding every later chunk back
    assert fake.slept == []


def test_a_backlog_found_at_once_goes_out_at_a_quarter_above_the_pace_after_two_seconds_of_it(fake):
    # Given Segment's 1,000 events/s, and a batch of five one-second chunks found queued together
    limiter = RateLimiter(1_000, clock=fake.clock, sleep=fake.sleep)
    started = fake.now

    # When the sender sends them one after the other
    for _ in range(5):
        limiter.acquire(1_000, NO_DEADLINE)

    # Then three go at once and the next ones at a quarter above the pace: 5,000 events over 1.2 s
    assert fake.slept == pytest.approx([0.4, 0.8])
    assert fake.now - started == pytest.approx(1.2)


def test_a_429_halves_the_pace_and_holds_batches_for_retry_after(fake):
    # Given 100 events/s
    limiter = RateLimiter(100, clock=fake.clock, sleep=fake.sleep)
    limiter.acquire(10, NO_DEADLINE)

    # When Segment answers 429 with Retry-After: 3
    limiter.throttled(3.0)

    # Then the pace is halved and the next batch waits out the 3 seconds
    assert limiter.rate == 50
    limiter.acquire(10, NO_DEADLINE)
    assert fake.slept == [3.0]


def test_a_long_retry_after_fails_the_batch_instead_of_sleeping_past_the_deadline(fake):
    # Given a 429 with Retry-After: 300 and an invocation with 100 s left
    limiter = RateLimiter(1_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled(300.0)
    deadline = fake.now + 100

    # When the next batch asks to go
    with pytest.raises(DeliveryError, match=r"holds the next batch for 300.0s, past this invocation's time budget"):
        limiter.acquire(10, deadline)

    # Then nobody slept, and nothing was reserved: a later invocation waits only for the Retry-After
    assert fake.slept == []
    fake.now += 300
    limiter.acquire(10, fake.now + 100)
    assert fake.slept == []


def test_at_one_event_a_second_the_batch_that_would_outlive_the_invocation_is_not_waited_for(fake):
    # Given a pace of 1 event/s and 60 s left
    limiter = RateLimiter(1, clock=fake.clock, sleep=fake.sleep)
    deadline = fake.now + 60

    # When two batches of 50 ask to go
    limiter.acquire(50, deadline)

    # Then the first goes at once, and the second (due in 40 s at 1.25 events/s, two seconds early: before
    # the deadline) waits; a third (due 78 s from the start) fails at once instead of sleeping into the timeout
    limiter.acquire(50, deadline)
    assert fake.slept == [38]
    with pytest.raises(DeliveryError):
        limiter.acquire(50, deadline)
    assert fake.slept == [38]


def test_the_pace_never_drops_below_the_floor(fake):
    limiter = RateLimiter(4, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10):
        limiter.throttled()
    assert limiter.rate == MIN_EVENTS_PER_SECOND


def test_the_pace_comes_back_a_step_per_quiet_interval_and_never_past_the_configured_pace(fake):
    # Given a limiter slowed by two 429s to a quarter of its 1,000 events/s
    limiter = RateLimiter(1_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()
    limiter.throttled()
    assert limiter.rate == 250

    # When less than an interval passes, Then nothing changes
    fake.now += RECOVERY_INTERVAL_S * 0.9
    limiter.acquire(1, NO_DEADLINE)
    assert limiter.rate == 250

    # When a full quiet interval has passed, Then one step comes back
    fake.now += RECOVERY_INTERVAL_S * 0.1
    limiter.acquire(1, NO_DEADLINE)
    assert limiter.rate == pytest.approx(250 + RECOVERY_STEP * 1_000)

    # When a long quiet time passes, Then it is back at its pace and no higher
    fake.now += RECOVERY_INTERVAL_S * 100
    limiter.acquire(1, NO_DEADLINE)
    assert limiter.rate == 1_000


def test_a_429_during_recovery_restarts_the_wait(fake):
    limiter = RateLimiter(1_000, clock=fake.clock, sleep=fake.sleep)
    limiter.throttled()
    fake.now += RECOVERY_INTERVAL_S * 0.9
    limiter.throttled()  # 250, and the quiet interval starts again
    fake.now += RECOVERY_INTERVAL_S * 0.9
    limiter.acquire(1, NO_DEADLINE)
    assert limiter.rate == 250


def test_each_sender_guards_the_destinations_whole_pace_under_the_stack_cap():
    # Given a destination paced at 1,000 events/s, and a stack that caps every destination at 400
    destination = SegmentConnection.model_validate(
        {
            "type": "segment",
            "write_key": {"env": "SEGMENT_K"},
            "endpoint": "http://127.0.0.1:1",
            "events_per_second": 1_000,
        }
    )

    def factory(_destination, _on_throttle):
        return object()

    # When a sender builds its client, Then its guard runs at the (capped) pace: the release schedule,
    # not a share per sender, keeps the senders together at the pace
    whole = Sender(runs=None, client_factory=factory)._client(destination)[1]
    capped = Sender(runs=None, events_per_second_cap=400, client_factory=factory)._client(destination)[1]
    assert (whole.rate, capped.rate) == (1_000, 400)

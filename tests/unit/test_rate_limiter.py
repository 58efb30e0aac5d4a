"""The sender's pace toward Segment: a share of the destination's events/s; halved on 429, given back slowly."""

from __future__ import annotations

import pytest

from segsync.config import SegmentConnection
from segsync.errors import DeliveryError
from segsync.sender import MIN_EVENTS_PER_SECOND, RECOVERY_INTERVAL_S, RECOVERY_STEP, RateLimiter, Sender

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


def test_batches_are_paced_to_the_rate(fake):
    # Given 100 events/s
    limiter = RateLimiter(100, clock=fake.clock, sleep=fake.sleep)

    # When three batches of 50 go out back to back
    for _ in range(3):
        limiter.acquire(50, NO_DEADLINE)

    # Then the first goes at once and each next one waits for the previous one's half second
    assert fake.slept == [0.5, 0.5]


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

    # Then the first goes at once, and the second (due in 50 s, before the deadline) waits; a third
    # (due 100 s from the start) fails at once instead of sleeping into Lambda's timeout
    limiter.acquire(50, deadline)
    assert fake.slept == [50]
    with pytest.raises(DeliveryError):
        limiter.acquire(50, deadline)
    assert fake.slept == [50]


def test_the_pace_never_drops_below_the_floor_nor_rises_above_a_share_under_it(fake):
    limiter = RateLimiter(4, clock=fake.clock, sleep=fake.sleep)
    tiny = RateLimiter(0.5, clock=fake.clock, sleep=fake.sleep)  # e.g. 500 events/s over 1,000 senders
    for _ in range(10):
        limiter.throttled()
        tiny.throttled()
    assert (limiter.rate, tiny.rate) == (MIN_EVENTS_PER_SECOND, 0.5)


def test_the_pace_comes_back_a_step_per_quiet_interval_and_never_past_the_share(fake):
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

    # When a long quiet time passes, Then it is back at its share and no higher
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


def test_each_sender_gets_its_share_of_the_destination_rate():
    # Given a destination paced at 1,000 events/s and 4 concurrent senders, one capped install-wide at 400
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

    # When each builds its client, Then its limiter paces a quarter of the (capped) rate
    shared = Sender(runs=None, concurrency=4, client_factory=factory)._client(destination)[1]
    capped = Sender(runs=None, concurrency=4, events_per_second_cap=400, client_factory=factory)._client(destination)[1]
    assert (shared.rate, capped.rate) == (250, 100)

"""A wave's stretch of its destination's release schedule, and when each of its chunks is released."""

from __future__ import annotations

from segsync.waves import MAX_DELAY_S, release_delay, reservation

NOW = 1_800_000_000.0


def test_a_wave_toward_an_idle_destination_starts_now_with_what_it_asked():
    # Given a destination nobody released anything toward, or whose releases are all in the past
    # When a wave asks for 60 s of its pace, 300 s planned ahead
    # Then it starts now and gets the 60 s
    assert reservation(NOW, None, 60, 300) == (NOW, 60)
    assert reservation(NOW, NOW - 500, 60, 300) == (NOW, 60)


def test_a_wave_starts_where_the_schedule_ends_and_never_past_the_plan_ahead():
    # Given other runs' waves released until 270 s from now, 300 s planned ahead
    # When a wave asks for 60 s
    start, granted = reservation(NOW, NOW + 270, 60, 300)

    # Then it starts after them and gets the 30 s left of the plan-ahead
    assert (start, granted) == (NOW + 270, 30)


def test_a_full_schedule_grants_nothing_the_run_waits_its_turn():
    assert reservation(NOW, NOW + 300, 60, 300) == (NOW + 300, 0)
    assert reservation(NOW, NOW + 400, 60, 300) == (NOW + 400, 0)


def test_chunks_are_released_from_the_wave_start_at_the_pace_within_sqs_limits():
    # Given a wave whose stretch begins 12.5 s from now, at 1,000 events/s
    # Then its chunks go out 12 s, 13 s, 14 s from now (whole seconds), never before now, never past 900 s
    assert [release_delay(ahead, 1_000, 12.5) for ahead in (0, 1_000, 2_000)] == [12, 13, 14]
    assert release_delay(0, 1_000, -0.0004) == 0
    assert release_delay(10_000_000, 1_000, 0) == MAX_DELAY_S

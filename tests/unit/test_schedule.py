"""Sync schedules: rate() and cron() as EventBridge reads them, in UTC, to the minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segsync.errors import ConfigError
from segsync.schedule import is_due, next_after, parse


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------- rate


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        ("rate(1 minute)", "2026-03-01T10:00:00", "2026-03-01T10:01:00"),
        ("rate(1 minute)", "2026-03-01T10:00:59.999", "2026-03-01T10:01:00"),
        ("rate(5 minutes)", "2026-03-01T10:02:30", "2026-03-01T10:05:00"),
        ("rate(15 minutes)", "2026-03-01T10:45:00", "2026-03-01T11:00:00"),
        ("rate(1 hour)", "2026-03-01T10:00:01", "2026-03-01T11:00:00"),
        ("rate(6 hours)", "2026-03-01T13:00:00", "2026-03-01T18:00:00"),
        ("rate(1 day)", "2026-03-01T00:00:00", "2026-03-02T00:00:00"),
        ("rate(1 day)", "2026-12-31T23:59:00", "2027-01-01T00:00:00"),
        # the grid runs from the epoch: 7-minute steps are not aligned to the hour
        ("rate(7 minutes)", "2026-03-01T10:00:00", "2026-03-01T10:01:00"),
        ("RATE( 2 Hours )", "2026-03-01T01:30:00", "2026-03-01T02:00:00"),
    ],
)
def test_rate_fires_on_a_grid_from_the_epoch(expression, moment, expected):
    # When / Then the next fire time is the next grid point strictly after the moment
    assert next_after(expression, at(moment)) == at(expected)


def test_rate_of_one_hour_is_the_same_as_cron_on_the_hour():
    # Given a week of moments, every 13 minutes
    moments = [at("2026-03-01T00:00:00") + timedelta(minutes=13 * i, seconds=i % 60) for i in range(800)]

    # When / Then both expressions agree at every one of them
    for moment in moments:
        assert next_after("rate(1 hour)", moment) == next_after("cron(0 * * * ? *)", moment)


# ---------------------------------------------------------------------------------------- cron


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        # every day at 09:00
        ("cron(0 9 * * ? *)", "2026-03-01T08:59:59", "2026-03-01T09:00:00"),
        ("cron(0 9 * * ? *)", "2026-03-01T09:00:00", "2026-03-02T09:00:00"),
        # every 15 minutes (0/15), and the 5/15 form (5, 20, 35, 50)
        ("cron(0/15 * * * ? *)", "2026-03-01T10:46:00", "2026-03-01T11:00:00"),
        ("cron(5/15 * * * ? *)", "2026-03-01T10:36:00", "2026-03-01T10:50:00"),
        ("cron(*/20 8-10 * * ? *)", "2026-03-01T10:41:00", "2026-03-02T08:00:00"),
        # lists and ranges
        ("cron(0,30 8,17 * * ? *)", "2026-03-01T08:30:00", "2026-03-01T17:00:00"),
        ("cron(10-12 6 * * ? *)", "2026-03-01T06:11:30", "2026-03-01T06:12:00"),
        # weekdays at 18:00 (2026-03-06 is a Friday), by number and by name
        ("cron(0 18 ? * MON-FRI *)", "2026-03-06T18:00:00", "2026-03-09T18:00:00"),
        ("cron(0 18 ? * 2-6 *)", "2026-03-06T18:00:00", "2026-03-09T18:00:00"),
        ("cron(0 12 ? * sun *)", "2026-03-01T12:00:00", "2026-03-08T12:00:00"),
        ("cron(0 12 ? * 1,7 *)", "2026-03-02T00:00:00", "2026-03-07T12:00:00"),
        # first of the month, named months
        ("cron(0 0 1 * ? *)", "2026-01-31T12:00:00", "2026-02-01T00:00:00"),
        ("cron(0 0 1 JAN,JUL ? *)", "2026-02-01T00:00:00", "2026-07-01T00:00:00"),
        # day 31 skips the months without one; 29 February waits for a leap year
        ("cron(0 0 31 * ? *)", "2026-04-01T00:00:00", "2026-05-31T00:00:00"),
        ("cron(0 0 29 2 ? *)", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        # L: last day of the month, L-2, last Friday (6L), last weekday (LW)
        ("cron(0 0 L * ? *)", "2026-02-01T00:00:00", "2026-02-28T00:00:00"),
        ("cron(0 0 L * ? *)", "2028-02-01T00:00:00", "2028-02-29T00:00:00"),
        ("cron(0 0 L-2 * ? *)", "2026-02-01T00:00:00", "2026-02-26T00:00:00"),
        ("cron(0 0 ? * 6L *)", "2026-03-01T00:00:00", "2026-03-27T00:00:00"),
        ("cron(0 0 ? * FRIL *)", "2026-03-01T00:00:00", "2026-03-27T00:00:00"),
        ("cron(0 0 LW * ? *)", "2026-05-01T00:00:00", "2026-05-29T00:00:00"),  # 31 May 2026 is a Sunday
        # W: nearest weekday (15 Mar 2026 is a Sunday → Monday 16th; 1 Aug 2026 is a Saturday → Monday 3rd)
        ("cron(0 0 15W * ? *)", "2026-03-01T00:00:00", "2026-03-16T00:00:00"),
        ("cron(0 0 1W * ? *)", "2026-07-31T00:00:00", "2026-08-03T00:00:00"),
        # #: the second Tuesday, the fifth Monday (only some months have one)
        ("cron(0 9 ? * 3#2 *)", "2026-03-01T00:00:00", "2026-03-10T09:00:00"),
        ("cron(0 9 ? * MON#5 *)", "2026-03-01T00:00:00", "2026-03-30T09:00:00"),
        ("cron(0 9 ? * MON#5 *)", "2026-03-31T00:00:00", "2026-06-29T09:00:00"),
        # the year field
        ("cron(0 0 1 1 ? 2030-2031)", "2026-03-01T00:00:00", "2030-01-01T00:00:00"),
        ("cron(0 0 1 1 ? 2030-2031)", "2030-01-01T00:00:00", "2031-01-01T00:00:00"),
        # a moment with seconds fires at the next whole minute that matches, never at the same one
        ("cron(* * * * ? *)", "2026-03-01T10:00:00.5", "2026-03-01T10:01:00"),
    ],
)
def test_cron_golden_cases(expression, moment, expected):
    # When / Then
    assert next_after(expression, at(moment)) == at(expected)


def test_a_cron_that_never_fires_again_has_no_next_time():
    # Given a year range in the past, and a day that does not exist
    # When / Then there is no next fire time, and such a sync is never due again
    assert next_after("cron(0 0 1 1 ? 2020)", at("2026-03-01T00:00:00")) is None
    assert next_after("cron(0 0 30 2 ? *)", at("2026-03-01T00:00:00")) is None
    assert not is_due("cron(0 0 1 1 ? 2020)", at("2020-01-01T00:00:10"), at("2026-03-01T00:00:00"))


def test_other_time_zones_are_read_as_the_same_instant_in_utc():
    # Given 09:30 in UTC+02:00, which is 07:30 UTC
    moment = datetime.fromisoformat("2026-03-01T09:30:00+02:00")

    # When / Then the next 08:00 UTC follows, returned in UTC
    assert next_after("cron(0 8 * * ? *)", moment) == at("2026-03-01T08:00:00")


# ---------------------------------------------------------------------------------------- is_due


def test_a_sync_that_never_ran_is_due_at_once():
    assert is_due("cron(0 3 * * ? *)", None, at("2026-03-01T12:00:00"))


@pytest.mark.parametrize(
    ("expression", "last_started", "now", "due"),
    [
        # hourly, last run started a few seconds after the hour (the tick's latency): due on the next hour
        ("rate(1 hour)", "2026-03-01T10:00:04", "2026-03-01T10:55:00", False),
        ("rate(1 hour)", "2026-03-01T10:00:04", "2026-03-01T11:00:02", True),
        # a tick that came late does not shift later runs: still due at 12:00, not 12:05
        ("rate(1 hour)", "2026-03-01T11:05:00", "2026-03-01T12:00:01", True),
        # a run at 03:00 daily, ticks every 5 minutes
        ("cron(0 3 * * ? *)", "2026-03-01T03:00:10", "2026-03-01T03:05:00", False),
        ("cron(0 3 * * ? *)", "2026-03-01T03:00:10", "2026-03-02T02:55:00", False),
        ("cron(0 3 * * ? *)", "2026-03-01T03:00:10", "2026-03-02T03:00:09", True),
        # missed fire times (an outage) make it due once, now
        ("rate(5 minutes)", "2026-03-01T03:00:00", "2026-03-04T17:42:00", True),
        # a manual run mid-way does not stop the next scheduled time
        ("cron(0 3 * * ? *)", "2026-03-02T02:58:00", "2026-03-02T03:00:05", True),
    ],
)
def test_is_due_when_a_fire_time_passed_since_the_last_start(expression, last_started, now, due):
    assert is_due(expression, at(last_started), at(now)) is due


def test_naive_datetimes_are_refused():
    # A naive datetime has no defined instant: refusing it beats guessing local time
    with pytest.raises(ValueError, match="no time zone"):
        next_after("rate(1 hour)", datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="no time zone"):
        is_due("rate(1 hour)", datetime(2026, 3, 1), at("2026-03-01T00:00:00"))


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("every hour", "expected rate(N minutes|hours|days) or cron("),
        ("rate(1 minutes)", "write '1 minute'"),
        ("rate(5 minute)", "write '5 minutes'"),
        ("rate(0 minutes)", "positive whole number"),
        ("rate(2 weeks)", "unit 'weeks' is not minute(s), hour(s) or day(s)"),
        ("rate(-1 hours)", "expected rate("),
        ("cron(0 9 * * ?)", "cron needs 6 fields"),
        ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(60 9 * * ? *)", "minutes field '60': 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours field '24': 24 is outside 0-23"),
        ("cron(0 9 0 * ? *)", "day-of-month field '0': 0 is outside 1-31"),
        ("cron(0 9 * 13 ? *)", "month field '13': 13 is outside 1-12"),
        ("cron(0 9 * FOO ? *)", "month field 'FOO': 'FOO' is not a number 1-12 or one of JAN"),
        ("cron(0 9 ? * 0 *)", "day-of-week field '0': 0 is outside 1-7"),
        ("cron(0 9 ? * 8 *)", "8 is outside 1-7"),
        ("cron(0 9 * * ? 1969)", "year field '1969': 1969 is outside 1970-2199"),
        ("cron(30-10 9 * * ? *)", "minutes field '30-10': the range runs backwards"),
        ("cron(*/0 9 * * ? *)", "the step after '/' must be a positive number"),
        ("cron(0 9 ? * 2#6 *)", "the occurrence after '#' must be 1 to 5"),
        ("cron(0 9 1,LW * ? *)", "alone"),
        ("cron(0 9 ? * 2L,3 *)", "alone"),
        ("cron(0 9 L-31 * ? *)", "'L-n' needs n from 0 to 30"),
        ("cron(a 9 * * ? *)", "minutes field 'a': 'a' is not a number 0-59"),
    ],
)
def test_an_invalid_expression_is_a_config_error_that_quotes_it(expression, reason):
    # When / Then the error names the expression and says what is wrong with it
    with pytest.raises(ConfigError) as raised:
        parse(expression)
    message = str(raised.value)
    assert message.startswith(f"schedule '{expression}': ")
    assert reason in message


def test_is_due_checks_the_expression_even_for_a_sync_that_never_ran():
    with pytest.raises(ConfigError, match="schedule 'rate"):
        is_due("rate(1 fortnight)", None, at("2026-03-01T00:00:00"))


# ---------------------------------------------------------------------------------------- properties

EXPRESSIONS = st.one_of(
    st.builds(
        lambda n, unit: f"rate({n} {unit if n == 1 else unit + 's'})",
        st.integers(1, 400),
        st.sampled_from(["minute", "hour", "day"]),
    ),
    st.sampled_from(
        [
            "cron(* * * * ? *)",
            "cron(0/7 */3 * * ? *)",
            "cron(15 10 ? * MON-FRI *)",
            "cron(0 0 L * ? *)",
            "cron(0 0 LW * ? *)",
            "cron(0 12 15W * ? *)",
            "cron(59 23 31 12 ? *)",
            "cron(0 9 ? * 6L *)",
            "cron(30 4 ? * 2#1 *)",
            "cron(0 0 29 2 ? *)",
            "cron(5,10 1-3 1,15 JAN-MAR ? 2026-2199)",
        ]
    ),
)
MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2190, 1, 1), timezones=st.just(UTC))


@given(expression=EXPRESSIONS, moment=MOMENTS)
def test_next_after_is_strictly_later_and_on_a_whole_minute(expression, moment):
    # When
    following = next_after(expression, moment)

    # Then it is later than the moment, on a whole minute, in UTC
    assert following is not None
    assert following > moment
    assert following.second == 0 and following.microsecond == 0
    assert following.utcoffset() == timedelta(0)


@given(expression=EXPRESSIONS, moment=MOMENTS)
def test_nothing_fires_between_a_moment_and_its_next_time(expression, moment):
    # Given the next fire time after a moment
    following = next_after(expression, moment)

    # When we ask again from one minute before it
    again = next_after(expression, following - timedelta(minutes=1))

    # Then it is the same time: no fire time was skipped in between
    assert again == following


@given(expression=EXPRESSIONS, last=MOMENTS, wait=st.integers(0, 60 * 24 * 400))
def test_due_exactly_from_the_next_fire_time_on(expression, last, wait):
    # Given a last start and a moment some minutes later
    now = last + timedelta(minutes=wait)

    # When / Then the sync is due at that moment exactly when the next fire time has come
    assert is_due(expression, last, now) is (next_after(expression, last) <= now)

"""Sync schedules: EventBridge-style ``rate(...)`` and 6-field ``cron(...)``, in UTC, to the minute.

A sync's ``schedule`` says when it is due; the planner's tick (itself an EventBridge schedule) asks
``is_due`` for each sync and starts the due ones. Pure: no clock, no I/O.

Semantics, chosen so a run never drifts and the answer depends only on the expression:

- ``cron(min hour day-of-month month day-of-week year)`` fires at the minutes it matches, as
  EventBridge reads it: day-of-week 1-7 is SUN-SAT, exactly one of day-of-month and day-of-week is
  ``?``, ``L`` (last day of month, or ``5L`` last Thursday), ``W`` (``15W`` nearest weekday, ``LW``)
  and ``#`` (``2#1`` first Monday) as documented.
- ``rate(N unit)`` fires every N minutes, hours or days on a grid anchored at the Unix epoch (UTC):
  ``rate(1 hour)`` fires on the hour, ``rate(1 day)`` at 00:00 UTC, ``rate(15 minutes)`` at :00,
  :15, :30, :45. (EventBridge anchors a rate at the schedule's creation instead; a grid needs no
  stored anchor and makes ``rate(1 hour)`` equal to ``cron(0 * * * ? *)``.)
- A sync is due when a fire time has passed since its last run started; a sync that never ran is
  due at once. Missed fire times (a tick lost, a run still going) make it due once, not once each.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from segsync.errors import ConfigError

MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_YEAR, MAX_YEAR = 1970, 2199
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
RATE_UNITS = {"minute": 1, "hour": 60, "day": 24 * 60}
RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$", re.IGNORECASE)
CRON = re.compile(r"^cron\((.*)\)$", re.IGNORECASE | re.DOTALL)
FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")


class _Invalid(ValueError):
    """One field's problem; ``parse`` adds the expression and raises ConfigError."""


@dataclass(frozen=True)
class Rate:
    """``rate(N unit)``: every ``minutes`` minutes on the epoch-anchored grid."""

    minutes: int

    def next_after(self, moment: datetime) -> datetime:
        elapsed = int((moment - EPOCH) // MINUTE)  # whole minutes since the epoch (floor)
        return EPOCH + (elapsed // self.minutes + 1) * self.minutes * MINUTE


@dataclass(frozen=True)
class DaySpec:
    """The day-of-month or day-of-week field: plain values, or one of the ``L``/``W``/``#`` forms."""

    kind: str  # "any", "values", "last", "last-weekday", "nearest-weekday", "last-of-week", "nth"
    values: frozenset[int] = frozenset()
    offset: int = 0  # "last": L-3 is offset 3; "nearest-weekday": the day; "nth": the occurrence

    def days(self, year: int, month: int, from_month_day: bool) -> set[int]:
        """The days of ``year``-``month`` this field allows."""
        length = calendar.monthrange(year, month)[1]
        if self.kind == "any":
            return set(range(1, length + 1))
        if from_month_day:
            if self.kind == "values":
                return {d for d in self.values if d <= length}
            if self.kind == "last":
                return {length - self.offset} if length - self.offset >= 1 else set()
            if self.kind == "last-weekday":
                return {_nearest_weekday(year, month, length, length)}
            return {_nearest_weekday(year, month, self.offset, length)} if self.offset <= length else set()
        weekdays = {d: _aws_weekday(date(year, month, d)) for d in range(1, length + 1)}
        if self.kind == "values":
            return {d for d, w in weekdays.items() if w in self.values}
        [weekday] = self.values
        matching = sorted(d for d, w in weekdays.items() if w == weekday)
        if self.kind == "last-of-week":
            return {matching[-1]}
        return {matching[self.offset - 1]} if self.offset <= len(matching) else set()


@dataclass(frozen=True)
class Cron:
    """``cron(...)``: the minutes, hours, months and years it allows, and its day rule."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    day_of_month: DaySpec | None  # None when the field is "?"
    day_of_week: DaySpec | None

    def next_after(self, moment: datetime) -> datetime | None:
        start = moment.replace(second=0, microsecond=0) + MINUTE
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for day in sorted(self._days(year, month)):
                    today = date(year, month, day)
                    if today < start.date():
                        continue
                    found = self._time_on(today, start)
                    if found is not None:
                        return found
        return None

    def _days(self, year: int, month: int) -> set[int]:
        if self.day_of_month is not None:
            return self.day_of_month.days(year, month, from_month_day=True)
        assert self.day_of_week is not None  # parse guarantees exactly one of the two is "?"
        return self.day_of_week.days(year, month, from_month_day=False)

    def _time_on(self, day: date, start: datetime) -> datetime | None:
        same_day = day == start.date()
        for hour in self.hours:
            if same_day and hour < start.hour:
                continue
            for minute in self.minutes:
                if same_day and hour == start.hour and minute < start.minute:
                    continue
                return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        return None


Schedule = Rate | Cron


@lru_cache(maxsize=1024)
def parse(expression: str) -> Schedule:
    """Read a schedule expression.

    Raises:
        ConfigError: the expression is not a valid ``rate(...)`` or ``cron(...)``; the message quotes it
            and says which part is wrong.
    """
    text = expression.strip()
    try:
        if rate := RATE.match(text):
            return _rate(int(rate.group(1)), rate.group(2).lower())
        if cron := CRON.match(text):
            return _cron(cron.group(1).split())
        raise _Invalid("expected rate(N minutes|hours|days) or cron(minutes hours day-of-month month day-of-week year)")
    except _Invalid as exc:
        raise ConfigError(f"schedule '{expression}': {exc}") from None


def next_after(expression: str, moment: datetime) -> datetime | None:
    """The first fire time strictly after ``moment`` (aware, UTC, whole minute); None if it never fires again.

    Raises:
        ConfigError: the expression is invalid; ValueError: ``moment`` is naive.
    """
    return parse(expression).next_after(_utc(moment))


def is_due(expression: str, last_started: datetime | None, now: datetime) -> bool:
    """Whether a sync on this schedule should start at ``now``; its last run started at ``last_started``.

    Raises:
        ConfigError: the expression is invalid; ValueError: a naive datetime.
    """
    schedule = parse(expression)
    if last_started is None:
        return True
    following = schedule.next_after(_utc(last_started))
    return following is not None and following <= _utc(now)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone: schedules are in UTC, pass an aware datetime")
    return moment.astimezone(UTC)


def _rate(value: int, unit: str) -> Rate:
    singular = unit.removesuffix("s")
    if singular not in RATE_UNITS:
        raise _Invalid(f"unit '{unit}' is not minute(s), hour(s) or day(s)")
    if value < 1:
        raise _Invalid("the value must be a positive whole number")
    # EventBridge's own rule, kept so an expression that works here works as a TickSchedule too.
    if (value == 1) != (unit == singular):
        raise _Invalid(
            f"write '{value} {singular if value == 1 else singular + 's'}' (singular for 1, plural otherwise)"
        )
    return Rate(value * RATE_UNITS[singular])


def _cron(fields: list[str]) -> Cron:
    if len(fields) != 6:
        raise _Invalid(f"cron needs 6 fields ({' '.join(FIELD_NAMES)}), got {len(fields)}")
    minute, hour, month_day, month, week_day, year = fields
    if (month_day == "?") == (week_day == "?"):
        raise _Invalid("exactly one of day-of-month and day-of-week must be '?'")
    return Cron(
        minutes=_values(minute, "minutes", 0, 59),
        hours=_values(hour, "hours", 0, 23),
        months=_values(month, "month", 1, 12, MONTHS),
        years=_values(year, "year", MIN_YEAR, MAX_YEAR),
        day_of_month=None if month_day == "?" else _day_of_month(month_day),
        day_of_week=None if week_day == "?" else _day_of_week(week_day),
    )


def _values(text: str, field: str, low: int, high: int, names: tuple[str, ...] = ()) -> tuple[int, ...]:
    """A field of ``*``, numbers or names, ranges ``a-b``, steps ``*/n`` ``a/n`` ``a-b/n``, and lists."""
    allowed: set[int] = set()
    for part in text.split(","):
        allowed |= _part(part, field, low, high, names)
    return tuple(sorted(allowed))


def _part(part: str, field: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    where = f"{field} field '{part}'"
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise _Invalid(f"{where}: the step after '/' must be a positive number")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    elif "-" in base:
        first_text, _, last_text = base.partition("-")
        first, last = (
            _number(first_text, where, low, high, names),
            _number(last_text, where, low, high, names),
        )
        if first > last:
            raise _Invalid(f"{where}: the range runs backwards")
    else:
        first = _number(base, where, low, high, names)
        # "5/15" means from 5 to the end in steps of 15; a bare "5" is just 5.
        last = high if slash else first
    return set(range(first, last + 1, step))


def _number(text: str, where: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.upper() in names:
        return names.index(text.upper()) + low
    if not text.isdigit():
        expected = f"a number {low}-{high}" + (f" or one of {', '.join(names)}" if names else "")
        raise _Invalid(f"{where}: '{text}' is not {expected}")
    value = int(text)
    if not low <= value <= high:
        raise _Invalid(f"{where}: {value} is outside {low}-{high}")
    return value


def _day_of_month(original: str) -> DaySpec:
    where = f"day-of-month field '{original}'"
    text = original.upper()
    if text == "*":
        return DaySpec("any")
    if ("," in text or "/" in text) and ("L" in text or "W" in text):
        raise _Invalid(f"{where}: use L, L-n, LW or nW alone, not in a list or with a step")
    if text == "LW":
        return DaySpec("last-weekday")
    if text == "L" or text.startswith("L-"):
        offset = text[2:] or "0"
        if not offset.isdigit() or int(offset) > 30:
            raise _Invalid(f"{where}: 'L-n' needs n from 0 to 30")
        return DaySpec("last", offset=int(offset))
    if text.endswith("W"):
        return DaySpec("nearest-weekday", offset=_number(text[:-1], where, 1, 31, ()))
    if "L" in text or "W" in text:
        raise _Invalid(f"{where}: use L, L-n, LW or nW alone, not in a list or range")
    return DaySpec("values", frozenset(_values(original, "day-of-month", 1, 31)))


def _day_of_week(original: str) -> DaySpec:
    where = f"day-of-week field '{original}'"
    text = original.upper()
    if text == "*":
        return DaySpec("any")
    if ("," in text or "/" in text or "-" in text) and ("L" in text or "#" in text):
        raise _Invalid(f"{where}: use nL or n#k alone, not in a list, range or step")
    if text == "L":  # the last day of the week: Saturday
        return DaySpec("values", frozenset({7}))
    if text.endswith("L"):
        return DaySpec("last-of-week", frozenset({_number(text[:-1], where, 1, 7, WEEKDAYS)}))
    if "#" in text:
        weekday, _, nth = text.partition("#")
        if nth not in {"1", "2", "3", "4", "5"}:
            raise _Invalid(f"{where}: the occurrence after '#' must be 1 to 5")
        return DaySpec("nth", frozenset({_number(weekday, where, 1, 7, WEEKDAYS)}), offset=int(nth))
    if "L" in text:  # no weekday name has an L: this is "nL" inside a list or range
        raise _Invalid(f"{where}: use nL alone, not in a list or range")
    return DaySpec("values", frozenset(_values(original, "day-of-week", 1, 7, WEEKDAYS)))


def _aws_weekday(day: date) -> int:
    """EventBridge numbers the week 1 (SUN) to 7 (SAT); Python's weekday() is 0 (MON) to 6 (SUN)."""
    return (day.weekday() + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """The weekday (MON-FRI) nearest ``day`` without leaving the month, as ``15W`` asks."""
    weekday = date(year, month, day).weekday()
    if weekday < 5:
        return day
    if weekday == 5:  # Saturday: Friday before, unless that is last month (then the Monday after)
        return day - 1 if day > 1 else day + 2
    return day + 1 if day < length else day - 2  # Sunday: Monday after, unless that is next month

"""A destination's release schedule: every run toward it releases its chunks in turn, at the destination's pace.

Segment's budget (~1,000 events/s) is per workspace, and a tick starts every due sync at once. If each run
released its waves at the whole pace on its own, three runs toward one destination would send three times
the pace. So each destination keeps one schedule in the runs table (``pk = release#DESTINATION``): the
time until which its chunks are already released (``until``). A wave reserves the next stretch of it before
it is queued, never more than ``plan_ahead_s`` past now for all runs together, and gives back what it did
not fill (the end of its run). Senders then find at most the pace released, whatever the number of runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from segsync.waves import reservation

ATTEMPTS = 10
"""Conditional writes tried against other planners reserving at the same moment before a wave waits a tick."""
SCHEDULE_TTL_S = 24 * 3600
"""How long an idle schedule is kept past its last release (the runs table's TTL removes it)."""


@dataclass(frozen=True)
class Slot:
    """A stretch of a destination's schedule reserved for one wave."""

    after_s: float
    """Seconds from now until the wave's first chunk may be released."""
    seconds: float
    """How much of the pace the wave may fill (0: the schedule is full, the run waits its turn)."""
    start: Decimal
    until: Decimal


class ReleaseSchedule:
    """The runs table's release schedules, one item per destination (``segsync.state.destination_id``)."""

    def __init__(self, table: Any, clock: Any = time.time, attempts: int = ATTEMPTS) -> None:
        self._table = table
        self._clock = clock
        self._attempts = attempts

    def reserve(self, destination: str, seconds: float, plan_ahead_s: float) -> Slot:
        """Reserve up to ``seconds`` of the destination's pace, right after what is reserved already.

        Planners of other runs may reserve at the same moment: each write is conditional on the schedule
        it read, and a planner that keeps losing gets nothing this tick rather than an overlapping stretch.
        """
        key = _key(destination)
        for _ in range(self._attempts):
            now = self._clock()
            item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
            seen = item["until"] if item else None
            start, granted = reservation(now, None if seen is None else float(seen), seconds, plan_ahead_s)
            if granted <= 0:
                return Slot(start - now, 0.0, _stamp(start), _stamp(start))
            begins, until = _stamp(start), _stamp(start + granted)
            if self._write(key, until, seen):
                return Slot(float(begins) - now, float(until - begins), begins, until)
        return Slot(0.0, 0.0, _stamp(now), _stamp(now))

    def give_back(self, destination: str, slot: Slot, used_s: float) -> None:
        """Return the part of ``slot`` a wave did not fill, unless another wave has reserved after it."""
        end = max(slot.start, _stamp(float(slot.start) + used_s))
        if end < slot.until:
            self._write(_key(destination), end, slot.until)

    def _write(self, key: dict[str, str], until: Decimal, seen: Decimal | None) -> bool:
        condition = "attribute_not_exists(#until)" if seen is None else "#until = :seen"
        values: dict[str, Any] = {":until": until, ":expires": int(until) + SCHEDULE_TTL_S}
        if seen is not None:
            values[":seen"] = seen
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression="SET #until = :until, expires_at = :expires",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _key(destination: str) -> dict[str, str]:
    return {"pk": f"release#{destination}", "sk": "schedule"}


def _stamp(seconds: float) -> Decimal:
    """Epoch seconds as the schedule stores them (to the millisecond)."""
    return Decimal(f"{seconds:.3f}")

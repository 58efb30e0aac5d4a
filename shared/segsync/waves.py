"""How much of a run goes to the queue at once (a wave), and when each of its chunks is released.

A run of 100M rows at Segment's ~1,000 events/s lasts a day: queueing it all at once would keep a day
of work in SQS (and re-send all of it if the run were abandoned). So the planner queues it in waves:
never more than ``plan_ahead_s`` of the destination's pace waiting at once, topped up at each tick.
Within a wave, each chunk is released (SQS ``DelaySeconds``) once the rows ahead of it have had time
to go out at the pace, so a sender finds work as the pace allows and sends it at full speed. The rows
ahead include other runs' toward the same destination: waves take turns on its release schedule
(``segsync.release``).
"""

from __future__ import annotations

MAX_DELAY_S = 900
"""SQS's longest DelaySeconds."""


def wave_rows(events_per_second: float, plan_ahead_s: float, queued_rows: int) -> int:
    """How many rows the next wave may hold: ``plan_ahead_s`` of the pace, less what is still queued."""
    return max(0, int(events_per_second * plan_ahead_s) - queued_rows)


def release_delay(rows_ahead: int, events_per_second: float, after_s: float = 0.0) -> int:
    """Whole seconds to hold back a chunk: until its wave's stretch of the schedule begins (``after_s``), then
    the time the wave's rows before it take at the pace."""
    return max(0, min(MAX_DELAY_S, int(after_s + rows_ahead / events_per_second)))


def reservation(now: float, until: float | None, seconds: float, plan_ahead_s: float) -> tuple[float, float]:
    """(start, seconds granted) of a wave's stretch of a destination's release schedule (``segsync.release``).

    It starts when the schedule is released ``until`` (now, if that has passed) and ends at most
    ``plan_ahead_s`` past now, for every run toward the destination together; 0 s granted: it is full.
    """
    start = max(now, until if until is not None else now)
    return start, max(0.0, min(seconds, now + plan_ahead_s - start))

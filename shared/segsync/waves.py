"""How much of a run goes to the queue at once (a wave), and when each of its chunks is released.

A run of 100M rows at Segment's ~1,000 events/s lasts a day: queueing it all at once would keep a day
of work in SQS (and re-send all of it if the run were abandoned). So the planner queues it in waves:
never more than ``plan_ahead_s`` of the destination's pace waiting at once, topped up at each tick.
Within a wave, each chunk is released (SQS ``DelaySeconds``) once the rows ahead of it have had time
to go out at the pace, so a sender finds work as the pace allows and sends it at full speed.
"""

from __future__ import annotations

MAX_DELAY_S = 900
"""SQS's longest DelaySeconds."""


def wave_rows(events_per_second: float, plan_ahead_s: float, queued_rows: int) -> int:
    """How many rows the next wave may hold: ``plan_ahead_s`` of the pace, less what is still queued."""
    return max(0, int(events_per_second * plan_ahead_s) - queued_rows)


def release_delay(rows_ahead: int, events_per_second: float) -> int:
    """Whole seconds to hold back a chunk: the time the rows queued before it take at the pace."""
    return min(MAX_DELAY_S, int(rows_ahead / events_per_second))

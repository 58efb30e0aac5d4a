"""The pace toward a destination, and how many rows a chunk may hold so that one sender sends it in one go.

The planner releases a run's chunks at the pace (``segsync.waves``): SQS DelaySeconds counts whole
seconds, so it releases about one second of the pace each second. A chunk holds at most that second, so
a sender handed a released chunk sends it at full speed and ends (its limiter is only a burst guard):
Segment sees about one second of events in one request, then nothing until the next second's chunks.
"""

from __future__ import annotations

SENDER_TIMEOUT_S = 120
"""The sender function's Timeout in template.yaml (a template test holds them equal)."""
SENDER_BATCH_SIZE = 5
"""Records per sender invocation: the SQS event source's BatchSize in template.yaml."""
RELEASE_STEP_S = 1
"""The release schedule's step (SQS DelaySeconds are whole seconds): a chunk holds at most this much of the pace."""


def destination_pace(events_per_second: float, cap: float | None) -> float:
    """Events/s toward a destination: its own pace, under the stack's cap (Segment's budget is per workspace)."""
    return min(events_per_second, cap or events_per_second)


def chunk_rows(events_per_second: float, cap: float | None, ceiling: int) -> int:
    """The most rows a chunk may hold toward this destination: ``ceiling``, or one step of a slower pace.

    A sender given a full batch of such chunks at once (a backlog) sends them at the pace in
    SENDER_BATCH_SIZE steps, well within its timeout.
    """
    return max(1, min(ceiling, int(destination_pace(events_per_second, cap) * RELEASE_STEP_S)))

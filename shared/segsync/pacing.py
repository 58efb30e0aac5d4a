"""How many rows a chunk may hold so that one sender invocation delivers its batch of chunks in time.

A sender invocation gets up to SENDER_BATCH_SIZE chunks and SENDER_TIMEOUT_S seconds, and sends at its
share of the destination's pace (events/s, capped by the stack, divided among the concurrent senders).
A chunk bigger than that share can deliver in time would fail on every receive and end in the DLQ, so
the planner cuts chunks to fit: the pace decides the chunk size, not the other way round.
"""

from __future__ import annotations

from segsync.errors import ConfigError

SENDER_TIMEOUT_S = 120
"""The sender function's Timeout in template.yaml (a template test holds them equal)."""
SENDER_BATCH_SIZE = 5
"""Records per sender invocation: the SQS event source's BatchSize in template.yaml."""
PACED_SHARE = 0.5
"""The share of an invocation spent waiting on the pace; the rest covers requests, retries and backoff."""


def sender_share(events_per_second: float, cap: float | None, concurrency: int) -> float:
    """Events/s one sender may send toward a destination (the same arithmetic as the sender's limiter)."""
    return min(events_per_second, cap or events_per_second) / max(1, concurrency)


def chunk_rows(events_per_second: float, cap: float | None, concurrency: int, ceiling: int) -> int:
    """The most rows a chunk may hold toward this destination: ``ceiling``, or fewer at a slow pace.

    Raises:
        ConfigError: not even one row per chunk fits (a pace too slow for so many senders).
    """
    share = sender_share(events_per_second, cap, concurrency)
    fits = int(share * SENDER_TIMEOUT_S * PACED_SHARE / SENDER_BATCH_SIZE)
    if fits < 1:
        raise ConfigError(
            f"the destination's pace of {events_per_second:g} events/s (stack cap {cap or 'none'}) shared by "
            f"{concurrency} senders leaves each {share:.3g} events/s: too slow to deliver {SENDER_BATCH_SIZE} "
            f"rows in a {SENDER_TIMEOUT_S}s invocation; raise events_per_second or lower SenderMaxConcurrency"
        )
    return min(ceiling, fits)

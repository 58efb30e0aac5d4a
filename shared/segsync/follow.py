"""Following one run in the runs table to its outcome, so an orchestrator can wait on ``segsync run --wait``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segsync.store import RunStore

OUTCOMES = ("committed", "failed", "abandoned", "skipped")
POLL_S = 5.0
START_TIMEOUT_S = 900.0
"""The planner's own timeout: a run not even recorded by then was never started (see the planner's logs)."""


@dataclass(frozen=True)
class Followed:
    """How following ended: an outcome (``committed``, ``failed``, ``abandoned``, ``skipped``), ``timeout``
    or ``not started``, with the run item as last read (empty if it never appeared)."""

    outcome: str
    run: dict[str, Any]
    seconds: float


def progress_line(run: dict[str, Any], elapsed: float) -> str:
    """One line of progress: status, rows delivered of those to send, committed, sent and rejected so far.

    Counts move at the planner's ticks, which add up what the senders delivered.
    """
    status = run.get("status", "waiting for the planner")
    parts = [f"[{elapsed:6.0f}s] {status}"]
    if "rows_to_send" in run:
        parts.append(f"{run.get('rows_done', 0):,}/{run['rows_to_send']:,} rows delivered")
        parts.append(f"{run.get('committed', 0):,} committed")
    if run:
        rejected = run.get("rejected_planner", 0) + run.get("rejected_sender", 0)
        parts.append(f"{run.get('sent', 0):,} sent, {rejected:,} rejected")
    return ", ".join(parts)


def follow(
    runs: RunStore,
    sync: str,
    run_id: str,
    *,
    timeout_s: float | None = None,
    poll_s: float = POLL_S,
    start_timeout_s: float = START_TIMEOUT_S,
    on_progress: Callable[[str], None] = lambda line: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Followed:
    """Poll the run item (``pk = sync#SYNC, sk = run#RUN_ID``) until it has an outcome or time runs out.

    ``on_progress`` gets a line whenever what it would say changes.
    """
    started = clock()
    shown = None
    while True:
        run = runs.run(sync, run_id)
        elapsed = clock() - started
        line = progress_line(run, elapsed)
        if line.split("] ", 1)[1] != shown:
            shown = line.split("] ", 1)[1]
            on_progress(line)
        if run.get("status") in OUTCOMES:
            return Followed(run["status"], run, elapsed)
        if timeout_s is not None and elapsed >= timeout_s:
            return Followed("timeout", run, elapsed)
        if not run and elapsed >= start_timeout_s:
            return Followed("not started", run, elapsed)
        wait = poll_s if timeout_s is None else min(poll_s, max(timeout_s - elapsed, 0.0))
        sleep(wait)

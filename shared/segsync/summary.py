"""A run as people see it: one summary of a run item, for the CLI, ``--wait`` and notifications alike."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from segsync.store import RunStore

TOP_REASONS = 5


@dataclass
class SyncSummary:
    """One sync's run as the CLI shows it (and prints with ``--json``)."""

    sync: str
    run_id: str
    status: str
    rows_read: int
    new: int
    changed: int
    unchanged: int
    sent: int
    batches: int
    rejected: int
    committed: int
    seconds: float
    peak_queued_rows: int = 0
    waves: int = 0
    checkpoints: int = 0
    error: str | None = None
    warning: str | None = None
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    removed: int = 0
    """Keys delivered before that the model no longer has (looked for where removals are sent)."""
    baseline: bool = False
    """A ``--mark-synced`` run: its rows were recorded as delivered, nothing was sent."""


def summarize(runs: RunStore, sync: str, run_id: str) -> SyncSummary:
    """One run as the CLI shows it, from its item in the runs table (its rejections counted by reason there:
    exact, whatever their number, without reading a rejected row)."""
    item = runs.run(sync, run_id)
    reasons = Counter(item.get("rejection_reasons") or {})
    finished = item.get("finished_at") or time.time()
    return SyncSummary(
        sync=sync,
        run_id=run_id,
        status=item.get("status", "unknown"),
        rows_read=item.get("rows_read", 0),
        new=item.get("new", 0),
        changed=item.get("changed", 0),
        unchanged=item.get("unchanged", 0),
        sent=item.get("sent", 0),
        batches=item.get("batches", 0),
        rejected=item.get("rejected_planner", 0) + item.get("rejected_sender", 0),
        committed=item.get("committed", 0),
        seconds=round(finished - item.get("started_at", finished), 3),
        peak_queued_rows=item.get("peak_queued_rows", 0),
        waves=item.get("waves", 0),
        checkpoints=item.get("checkpoints", 0),
        warning=item.get("warning"),
        error=item.get("error") or (item.get("last_error") if item.get("status") != "committed" else None),
        rejection_reasons=dict(reasons.most_common(TOP_REASONS)),
        removed=item.get("removed", 0),
        baseline=bool(item.get("mark_synced")),
    )

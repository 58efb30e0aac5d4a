"""A run's warehouse statements end to end, without the queue: what a run whose every chunk Segment accepted
leaves in state. For the state tests of each warehouse."""

from __future__ import annotations

from typing import Any

from segsync.config import AnySync
from segsync.state import DiffCounts, WarehouseState

ALL_ROWS = 10**9


def run_through(
    state: WarehouseState, sync: AnySync, destination: str, run_id: str, rejections: list[dict[str, Any]] | None = None
) -> tuple[DiffCounts, list[tuple[Any, ...]], int]:
    """Diff, read the rows to send as the run's waves would, and checkpoint them all (but ``rejections``).

    Returns the diff's counts, the rows read (the run table's, internal columns first) and how many rows
    the checkpoint committed.
    """
    state.fence(sync.name, run_id)
    diff = state.prepare(sync, run_id, destination, state.model_columns(sync.sql), full_resync=False)
    wave = state.wave_sql(sync.name, run_id, 0, ALL_ROWS)
    rows = [row for batch in state.warehouse.stream(wave, 100) for row in batch.rows]
    state.record_rejections(sync.name, run_id, "chunk 1", rejections or [])
    committed = state.checkpoint(sync, run_id, destination, 1, ALL_ROWS)
    state.drop_run(sync.name, run_id)
    return diff, rows, committed

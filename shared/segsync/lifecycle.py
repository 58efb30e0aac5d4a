"""A sync's runs over time: one at a time, committed only once delivered, abandoned when stale.

planning ─► sending ─► delivered ─► committed        (state merged, history written, lock released)
    │          │
    └──────────┴─► failed / abandoned             (nothing committed: the rows come back next run)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from segsync.config import SegmentConnection, TrackSync, UserSync
from segsync.errors import WarehouseError
from segsync.observability import logger, metrics
from segsync.planner import Planner, PlanResult, new_run_id
from segsync.state import WarehouseState, destination_id
from segsync.store import RunStore
from segsync.warehouse import Warehouse


class RunLifecycle:
    """Starts, finalizes and abandons runs; the only code that takes or releases a sync's lock."""

    def __init__(
        self,
        runs: RunStore,
        planner: Planner,
        lock_seconds: int,
        clock: Callable[[], float] = time.time,
        on_outcome: Callable[[str, str], None] | None = None,
    ) -> None:
        self._runs = runs
        self._planner = planner
        self._lock_seconds = lock_seconds
        self._clock = clock
        # Called with (sync, run id) once a run is committed, failed or abandoned (notifications).
        self._on_outcome = on_outcome or (lambda sync, run_id: None)

    def start(
        self,
        sync: UserSync | TrackSync,
        destination: SegmentConnection,
        warehouse: Warehouse,
        state: WarehouseState,
        *,
        trigger: str,
        full_resync: bool = False,
        run_id: str | None = None,
    ) -> PlanResult:
        """Settle the previous run if it is over, then plan a new one (unless one is still live).

        ``run_id``: the id a caller chose so it can follow the run (``segsync run --wait``); else a new one.
        """
        run_id = run_id or new_run_id()
        held = self._runs.acquire_lock(sync.name, run_id, self._lock_seconds)
        if held is not None:
            if not self._settle(sync, state, held):
                busy = f"run {held['run_id']} is still in progress"
                logger.info("run skipped", extra={"sync": sync.name, "reason": busy})
                return PlanResult(sync=sync.name, run_id=held["run_id"], status="skipped", error=busy)
            if self._runs.acquire_lock(sync.name, run_id, self._lock_seconds) is not None:
                return PlanResult(sync=sync.name, run_id=run_id, status="skipped", error="another planner won")
        self._runs.start(sync.name, run_id, trigger, full_resync, destination=destination_id(destination))
        result = self._planner.plan(sync, destination, warehouse, state, run_id=run_id, full_resync=full_resync)
        if result.status == "failed":
            self._close(sync.name, state, run_id)
        elif self._runs.run(sync.name, run_id).get("status") == "delivered":
            self._finalize(sync, state, run_id)
        return result

    def finalize(self, sync: UserSync | TrackSync, state: WarehouseState) -> dict[str, Any] | None:
        """Commit the sync's current run if every chunk is done; returns the run, or None if none was."""
        lock = self._runs.lock(sync.name)
        if lock is None:
            return None
        run = self._runs.run(sync.name, lock["run_id"])
        if run.get("status") == "committed":
            self._runs.release_lock(sync.name, lock["run_id"])
            return run
        if run.get("status") != "delivered":
            return None
        return self._finalize(sync, state, lock["run_id"])

    def record_failure(self, sync_name: str, trigger: str, error: str, run_id: str | None = None) -> PlanResult:
        """A run that could not even start (bad sync item, unreachable warehouse) still shows in history."""
        run_id = run_id or new_run_id()
        self._runs.start(sync_name, run_id, trigger)
        self._runs.failed(sync_name, run_id, error)
        result = PlanResult(sync=sync_name, run_id=run_id, status="failed", error=error)
        logger.error("run failed", extra=result.summary())
        self._on_outcome(sync_name, run_id)
        return result

    def known(self, sync_name: str, run_id: str) -> bool:
        """Whether a run with this id was started already."""
        return bool(self._runs.run(sync_name, run_id))

    def record_skipped(self, sync_name: str, trigger: str, run_id: str, reason: str) -> None:
        """A run someone waits for by id that could not start, because another run of the sync is live."""
        self._runs.skipped(sync_name, run_id, trigger, reason)

    def _settle(self, sync: UserSync | TrackSync, state: WarehouseState, lock: dict[str, Any]) -> bool:
        """Finish the run holding the lock if it can be finished; whether the lock is free now."""
        run = self._runs.run(sync.name, lock["run_id"]) if lock.get("run_id") else {}
        if run.get("status") == "delivered":
            self._finalize(sync, state, lock["run_id"])
            return True
        if run.get("status") in ("committed", "failed", "abandoned") or not run:
            self._runs.release_lock(sync.name, lock["run_id"])
            return True
        if lock["expires_at"] <= self._clock():
            self._abandon(sync, state, run)
            return True
        return False

    def _finalize(self, sync: UserSync | TrackSync, state: WarehouseState, run_id: str) -> dict[str, Any]:
        """Merge delivered rows into state, then history, then unlock; safe to repeat if it dies midway."""
        run = self._runs.run(sync.name, run_id)
        committed = state.commit(sync, run["destination"], run_id, self._runs.rejections(run_id))
        # History before the status: a finalize that dies in between is simply run again (both
        # steps replace what they wrote); once the status says committed, only cleanup is left.
        state.record_history({**run, "status": "committed", "committed": committed, "finished_at": self._clock()})
        self._runs.set_status(sync.name, run_id, "committed", committed=committed)
        state.drop_run(sync.name)
        self._runs.release_lock(sync.name, run_id)
        run = self._runs.run(sync.name, run_id)
        seconds = run["finished_at"] - run["started_at"]
        metrics.add_metric(name="RunSeconds", unit="Seconds", value=round(seconds, 3))
        logger.info("run committed", extra={"sync": sync.name, "run_id": run_id, "committed": committed})
        self._on_outcome(sync.name, run_id)
        return run

    def _abandon(self, sync: UserSync | TrackSync, state: WarehouseState, run: dict[str, Any]) -> None:
        """A run whose chunks never all finished commits nothing: its rows are due again next run."""
        reason = f"abandoned: not delivered before its lock expired ({run.get('last_error') or 'no error recorded'})"
        self._runs.set_status(sync.name, run["run_id"], "abandoned", error=reason)
        state.record_history(self._runs.run(sync.name, run["run_id"]))
        state.drop_run(sync.name)
        self._runs.release_lock(sync.name, run["run_id"])
        logger.warning("run abandoned", extra={"sync": sync.name, "run_id": run["run_id"]})
        self._on_outcome(sync.name, run["run_id"])

    def _close(self, sync_name: str, state: WarehouseState, run_id: str) -> None:
        """After a failed plan: history and cleanup where the warehouse allows, and the lock released."""
        try:
            state.record_history(self._runs.run(sync_name, run_id))
            state.drop_run(sync_name)
        except WarehouseError as exc:
            logger.warning("run history not written", extra={"sync": sync_name, "run_id": run_id, "error": str(exc)})
        finally:
            self._runs.release_lock(sync_name, run_id)
        self._on_outcome(sync_name, run_id)

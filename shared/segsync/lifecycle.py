"""A sync's runs over time: one at a time, held by progress, committed as they go, fenced when they lose.

planning ─► sending ─► committed       (each delivered wave merged into state at a tick; the last one ends it)
    │          │
    └──────────┴─► failed / abandoned   (what was checkpointed stays; the rest comes back next run)

A run holds its sync's lock while it makes progress: every tick that finds chunks delivered since the
last renews the lock for the lock window, merges the delivered waves into state (a checkpoint) and
tops the queue up with the next wave. A run with no progress for the whole window is abandoned by the
next run that starts. Every write that belongs to a run is fenced by its lock: in DynamoDB by a
condition on the lock, in the warehouse by ``RUN_FENCE``. Any error fails the run at once, with its
reason, and releases the lock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from segsync.config import AnySync, SegmentConnection
from segsync.errors import SegsyncError, WarehouseError
from segsync.observability import logger, metrics
from segsync.planner import Planner, PlanResult, new_run_id
from segsync.state import FINAL_STATUSES, WarehouseState, destination_id
from segsync.store import LostLock, RunStore, reason_kind

CHUNK_TOTALS = ("rows", "sent", "rejected", "batches", "bytes_sent", "retries")
"""What a sender writes on each chunk it delivered; a run's totals are their sums."""


class RunLifecycle:
    """Starts, advances, finalizes, fails and abandons runs; the only code that takes or releases a lock."""

    def __init__(
        self,
        runs: RunStore,
        planner: Planner,
        lock_seconds: int,
        clock: Callable[[], float] = time.time,
        on_outcome: Callable[[str, str], None] | None = None,
        work_seconds: float = 900.0,
    ) -> None:
        self._runs = runs
        self._planner = planner
        self._lock_seconds = lock_seconds
        self._clock = clock
        # Called with (sync, run id) once a run is committed, failed or abandoned (notifications).
        self._on_outcome = on_outcome or (lambda sync, run_id: None)
        self._work_seconds = work_seconds
        self._worker = uuid.uuid4().hex

    def start(
        self,
        sync: AnySync,
        destination: SegmentConnection,
        state: WarehouseState,
        *,
        trigger: str,
        full_resync: bool = False,
        run_id: str | None = None,
        mark_synced: bool = False,
        allow_mass_removal: bool = False,
    ) -> PlanResult:
        """Plan a new run, after moving the sync's live run along (and ending it if it is over).

        ``run_id``: the id a caller chose so it can follow the run (``segsync run --wait``); else a new one.
        ``mark_synced``: a baseline (every row recorded as delivered, nothing sent); ``allow_mass_removal``:
        send removals past the sync's ``max_removed_share`` (see ``Planner.plan``).
        """
        run_id = run_id or new_run_id()
        begin = {"trigger": trigger, "full_resync": full_resync, "destination": destination_id(destination)}
        live = self._acquire(sync, destination, state, run_id, begin)
        if live is not None:
            busy = f"run {live} is still in progress"
            logger.info("run skipped", extra={"sync": sync.name, "reason": busy})
            return PlanResult(sync=sync.name, run_id=live, status="skipped", error=busy)
        try:
            self._close_unfinished(sync, state, run_id)
            result = self._planner.plan(
                sync,
                destination,
                state,
                run_id=run_id,
                full_resync=full_resync,
                mark_synced=mark_synced,
                allow_mass_removal=allow_mass_removal,
            )
        except LostLock as exc:
            logger.warning("run lost its lock", extra={"sync": sync.name, "run_id": run_id, "error": str(exc)})
            return PlanResult(sync=sync.name, run_id=run_id, status="abandoned", error=str(exc))
        except Exception as exc:  # any error ends the run at once: recorded, lock released
            return self._fail(sync, state, run_id, exc)
        if result.chunks == 0:
            # Nothing queued (nothing changed, or every row rejected): the run can end now, not at a tick.
            self.advance(sync, destination, state, run_id)
        return result

    def _acquire(
        self, sync: AnySync, destination: SegmentConnection, state: WarehouseState, run_id: str, begin: dict[str, Any]
    ) -> str | None:
        """Take the sync's lock for ``run_id``: None once taken, else the live run that keeps it.

        A live run is moved along first (it may end now); one that made no progress for the lock window
        is abandoned and its lock taken over.
        """
        for _ in range(3):
            held = self._runs.begin(sync.name, run_id, self._lock_seconds, **begin)
            if held is None:
                return None
            live = held.get("run_id")
            if live is None:
                continue  # released between our two reads
            if self._runs.run(sync.name, live).get("status") in FINAL_STATUSES:
                # A run that ended without releasing its lock (its planner died in between): release it.
                self._runs.release_lock(sync.name, live)
                continue
            if self.advance(sync, destination, state, live).get("status") in FINAL_STATUSES:
                continue
            lock = self._runs.lock(sync.name)
            if lock is None:
                continue
            if lock["run_id"] != live or lock["expires_at"] > self._clock():
                return lock["run_id"]
            if self._take_over(sync, state, run_id, live, begin) is None:
                return None
        # Three planners raced us for the lock in a row: let the next tick try again.
        return (self._runs.lock(sync.name) or {}).get("run_id", "of another planner")

    def advance(
        self, sync: AnySync, destination: SegmentConnection, state: WarehouseState, run_id: str
    ) -> dict[str, Any]:
        """One tick of a live run: renew its lock if it made progress, checkpoint its delivered waves, queue
        the next ones, and finalize it once everything is delivered. Returns the run item as it ends.

        Only one planner works on a run at a time (``RunStore.claim_work``); another finds it claimed and
        leaves it as it is.
        """
        if not self._runs.claim_work(sync.name, run_id, self._worker, self._work_seconds):
            return self._runs.run(sync.name, run_id)
        try:
            return self._advance_claimed(sync, destination, state, self._runs.run(sync.name, run_id))
        except LostLock as exc:
            logger.warning("run lost its lock", extra={"sync": sync.name, "run_id": run_id, "error": str(exc)})
            return self._runs.run(sync.name, run_id)
        except Exception as exc:  # any error ends the run at once: recorded, lock released
            self._fail(sync, state, run_id, exc)
            return self._runs.run(sync.name, run_id)
        finally:
            self._runs.release_work(sync.name, run_id, self._worker)

    def record_failure(self, sync_name: str, trigger: str, error: str, run_id: str | None = None) -> PlanResult:
        """A run that could not even start (bad sync item, unreachable warehouse) still shows in history."""
        run_id = run_id or new_run_id()
        self._runs.start(sync_name, run_id, trigger)
        self._runs.failed(sync_name, run_id, error)
        result = PlanResult(sync=sync_name, run_id=run_id, status="failed", error=error)
        logger.error("run failed", extra=result.summary())
        self._on_outcome(sync_name, run_id)
        return result

    def live(self, sync_name: str) -> str | None:
        """The run holding the sync's lock, if any."""
        lock = self._runs.lock(sync_name)
        return None if lock is None else lock["run_id"]

    def known(self, sync_name: str, run_id: str) -> bool:
        """Whether a run with this id was started already."""
        return bool(self._runs.run(sync_name, run_id))

    def record_skipped(self, sync_name: str, trigger: str, run_id: str, reason: str) -> None:
        """A run someone waits for by id that could not start, because another run of the sync is live."""
        self._runs.skipped(sync_name, run_id, trigger, reason)

    # ------------------------------------------------------------------------------------------ a tick

    def _advance_claimed(
        self, sync: AnySync, destination: SegmentConnection, state: WarehouseState, run: dict[str, Any]
    ) -> dict[str, Any]:
        run_id = run["run_id"]
        lock = self._runs.lock(sync.name)
        if lock is None or lock["run_id"] != run_id:
            raise LostLock(f"run {run_id} of sync '{sync.name}' no longer holds the sync's lock")
        if run["status"] == "planning":
            return run  # its planner is diffing it now (or died doing so: then its lock lapses)
        waves = self._runs.waves(run_id)
        totals, delivered = self._delivered(run_id, waves, run["checkpointed_wave"])
        if totals["chunks_done"] > run["chunks_done"]:
            self._runs.renew(sync.name, run_id, self._lock_seconds)
        elif lock["expires_at"] <= self._clock():
            return run  # no progress for the whole lock window: the next run to start abandons it
        run = {**run, **self._checkpoint(sync, state, run, delivered, totals)}
        if not run.get("planning_done"):
            queued = run["rows_enqueued"] - totals["rows"]
            # A run with nothing queued that queues no wave is waiting its turn on the destination's release
            # schedule (other runs fill it): alive, not stuck.
            if self._planner.top_up(sync, destination, state, run, queued_rows=queued) or queued == 0:
                self._runs.renew(sync.name, run_id, self._lock_seconds)
            run = self._runs.run(sync.name, run_id)
        if run.get("planning_done") and run["checkpointed_wave"] == run["waves"]:
            return self._finalize(sync, state, run)
        return run

    def _delivered(
        self, run_id: str, waves: list[dict[str, Any]], checkpointed: int
    ) -> tuple[dict[str, int], list[tuple[dict[str, Any], dict[str, int]]]]:
        """The run's totals so far, and its waves past the last checkpoint whose chunks are all delivered
        (in order, up to the first that is not), each with its own totals."""
        totals = dict.fromkeys(("chunks_done", *CHUNK_TOTALS), 0)
        complete: list[tuple[dict[str, Any], dict[str, int]]] = []
        contiguous = True
        for wave in waves:
            if wave["wave"] <= checkpointed:
                own = {name: wave.get(name, 0) for name in totals}
            else:
                chunks = self._runs.chunks(run_id, wave["first_chunk"], wave["last_chunk"])
                own = {"chunks_done": len(chunks), **{n: sum(c.get(n, 0) for c in chunks) for n in CHUNK_TOTALS}}
                expected = wave["last_chunk"] - wave["first_chunk"] + 1
                contiguous = contiguous and own["chunks_done"] == expected
                if contiguous:
                    complete.append((wave, own))
            for name in totals:
                totals[name] += own[name]
        return totals, complete

    def _checkpoint(
        self,
        sync: AnySync,
        state: WarehouseState,
        run: dict[str, Any],
        delivered: list[tuple[dict[str, Any], dict[str, int]]],
        totals: dict[str, int],
    ) -> dict[str, Any]:
        """Merge each delivered wave into state (its chunks' rejected rows first, so they stay out)."""
        run_id = run["run_id"]
        committed, reasons = run["committed"], dict(run.get("rejection_reasons") or {})
        checkpointed = run["checkpointed_wave"]
        for wave, own in delivered:
            for number in range(wave["first_chunk"], wave["last_chunk"] + 1):
                rejected = self._runs.rejections(run_id, number)
                if rejected:
                    state.record_rejections(sync.name, run_id, f"chunk {number}", rejected)
                    for r in rejected:
                        kind = f"{r['field']}: {reason_kind(r['reason'])}"
                        reasons[kind] = reasons.get(kind, 0) + 1
            committed += state.checkpoint(sync, run_id, run["destination"], wave["first_seq"], wave["last_seq"])
            checkpointed = wave["wave"]
            self._runs.put_wave_totals(run_id, wave["wave"], own)
        progress = {
            "chunks_done": totals["chunks_done"],
            "rows_done": totals["rows"],
            "sent": totals["sent"],
            "rejected_sender": totals["rejected"],
            "batches": totals["batches"],
            "bytes_sent": totals["bytes_sent"],
            "retries": totals["retries"],
            "committed": committed,
            "checkpointed_wave": checkpointed,
            "checkpoints": run["checkpoints"] + len(delivered),
            "rejection_reasons": reasons,
        }
        self._runs.update_run(sync.name, run_id, **progress)
        if delivered:
            logger.info(
                "run checkpointed",
                extra={"sync": sync.name, "run_id": run_id, "wave": checkpointed, "committed": committed},
            )
        return progress

    # ------------------------------------------------------------------------------------------ endings

    def _finalize(self, sync: AnySync, state: WarehouseState, run: dict[str, Any]) -> dict[str, Any]:
        """Every wave is in state: move the cursor, write history, mark the run committed, clean up."""
        run_id = run["run_id"]
        state.advance_cursor(sync, run_id, run["destination"])
        finished = {"status": "committed", "finished_at": self._clock()}
        # History before the status: a finalize that dies in between is simply run again (both steps
        # replace what they wrote); once the status says committed, only cleanup is left.
        state.record_history({**run, **finished})
        self._runs.update_run(sync.name, run_id, **finished)
        state.drop_run(sync.name, run_id)
        self._runs.release_lock(sync.name, run_id)
        metrics.add_metric(name="RunSeconds", unit="Seconds", value=round(self._clock() - run["started_at"], 3))
        logger.info("run committed", extra={"sync": sync.name, "run_id": run_id, "committed": run["committed"]})
        self._on_outcome(sync.name, run_id)
        return self._runs.run(sync.name, run_id)

    def _fail(self, sync: AnySync, state: WarehouseState, run_id: str, exc: Exception) -> PlanResult:
        """Fail the run at once with what went wrong, keep what it checkpointed, and release its lock."""
        if isinstance(exc, WarehouseError):
            error = f"sync '{sync.name}': model query failed: {exc}"
        elif isinstance(exc, SegsyncError):
            error = f"sync '{sync.name}': {exc}"
        else:
            error = f"sync '{sync.name}': {type(exc).__name__}: {exc}"
            logger.exception("run failed on an unexpected error", extra={"sync": sync.name, "run_id": run_id})
        try:
            self._runs.update_run(sync.name, run_id, status="failed", error=error, finished_at=self._clock())
        except LostLock:
            return PlanResult(sync=sync.name, run_id=run_id, status="abandoned", error=error)
        try:
            state.record_history(self._runs.run(sync.name, run_id))
            state.drop_run(sync.name, run_id)
        except WarehouseError as history_error:
            logger.warning(
                "run history not written", extra={"sync": sync.name, "run_id": run_id, "error": str(history_error)}
            )
        finally:
            self._runs.release_lock(sync.name, run_id)
        result = PlanResult(sync=sync.name, run_id=run_id, status="failed", error=error)
        logger.error("run failed", extra=result.summary())
        metrics.add_metric(name="RunsFailed", unit="Count", value=1)
        self._on_outcome(sync.name, run_id)
        return result

    def _take_over(
        self, sync: AnySync, state: WarehouseState, run_id: str, stale: str, begin: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Take the lock from a run that made no progress for the lock window, and abandon that run.

        What it checkpointed stays in state; its chunks still queued are dropped by the senders (their run
        no longer holds the lock). Returns None once taken, else the lock now held.
        """
        held = self._runs.begin(sync.name, run_id, self._lock_seconds, replacing=stale, **begin)
        if held is not None:
            return held
        run = self._runs.run(sync.name, stale)
        reason = f"abandoned: no progress for {self._lock_seconds}s ({run.get('last_error') or 'no error recorded'})"
        self._runs.update_run(
            sync.name, stale, holder=run_id, status="abandoned", error=reason, finished_at=self._clock()
        )
        state.record_history(self._runs.run(sync.name, stale))
        state.drop_run(sync.name, stale)
        logger.warning("run abandoned", extra={"sync": sync.name, "run_id": stale, "by": run_id})
        self._on_outcome(sync.name, stale)
        return None

    def _close_unfinished(self, sync: AnySync, state: WarehouseState, run_id: str) -> None:
        """Runs the warehouse saw start and never end (their planner, or a local stack, died with them)."""
        state.ensure()
        for stale in state.unfinished_runs(sync.name, run_id):
            state.close_unfinished(sync.name, stale, "abandoned: its run ended without an outcome (no lock holds it)")
        state.record_history(self._runs.run(sync.name, run_id))

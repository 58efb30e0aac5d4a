"""The schedule's tick: which syncs are due, each started in its own planner invocation."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from segsync.errors import ConfigError
from segsync.schedule import is_due
from segsync.store import RunStore, SyncStore

Invoke = Callable[[dict[str, Any]], None]
"""Starts one planner invocation with an event (asynchronously on Lambda)."""


class Dispatcher:
    """Fans a tick out: one planner invocation per due sync, so one slow model never delays another.

    A sync without a ``schedule`` is due at every tick. A sync that is not due but has a live run gets a
    ``continue`` invocation, which checkpoints the run, tops its queue up and renews its lock: a run
    moves forward only as often as the tick comes.
    """

    def __init__(self, store: SyncStore, runs: RunStore, invoke: Invoke, clock: Callable[[], float] = time.time):
        self._store = store
        self._runs = runs
        self._invoke = invoke
        self._clock = clock

    def tick(self, trigger: str) -> list[dict[str, Any]]:
        """Dispatch every sync. A sync item that does not validate is dispatched too, at every tick:
        its invocation records a failed run naming the field (and the failed-runs alarm fires)."""
        dispatched = []
        for name in self._store.sync_names():
            try:
                action = self._action(name)
            except ConfigError:
                action = "run"
            if action is not None:
                self._invoke({"sync": name, "action": action, "trigger": trigger})
                dispatched.append({"sync": name, "action": action})
        return dispatched

    def dbt_built(self, models: list[str], trigger: str) -> list[dict[str, Any]]:
        """Start every enabled sync that reads one of ``models`` (a dbt job just built them), each on its own.

        A sync names its model as ``name`` or ``package.name``; a job's models are matched by name.
        """
        built = set(models)
        dispatched = []
        for name in self._store.sync_names():
            try:
                sync = self._store.sync(name)
            except ConfigError:
                continue  # an invalid item fails, named, in its own scheduled run
            if sync.enabled and sync.dbt_model is not None and sync.dbt_model.rsplit(".", 1)[-1] in built:
                self._invoke({"sync": name, "action": "run", "trigger": trigger})
                dispatched.append({"sync": name, "action": "run"})
        return dispatched

    def _action(self, name: str) -> str | None:
        sync = self._store.sync(name)
        if sync.enabled:
            now = self._clock()
            last = self._runs.last_scheduled(name)
            due = sync.schedule is None or is_due(
                sync.schedule,
                None if last is None else datetime.fromtimestamp(last, UTC),
                datetime.fromtimestamp(now, UTC),
            )
            if due and self._runs.claim_schedule(name, last, now):
                return "run"
        # A live run goes on to its end, even if its sync was disabled meanwhile.
        if self._runs.lock(name) is not None:
            return "continue"
        return None

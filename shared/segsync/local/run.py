"""One local run: project → moto tables → planner handler → SQS → sender handler → summary."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from segsync.config import Project, SegmentConnection
from segsync.console import Progress
from segsync.errors import ConfigError, SecretError
from segsync.local.driver import DEFAULT_TICK_S, SENDER_TIMEOUT_S, LocalDriver, load_handler
from segsync.local.stack import RUNS_TABLE, SYNCS_TABLE, local_stack
from segsync.secrets import resolve
from segsync.store import RunStore, SyncStore
from segsync.summary import SyncSummary, summarize
from segsync.warehouse.policy import project_hosts

REACH_TIMEOUT_S = 5


@dataclass
class LocalReport:
    """A whole local run: per-sync summaries plus what is left over in the DLQ."""

    runs: list[SyncSummary]
    seconds: float
    dead_letter_messages: int
    sender_invocations: int

    @property
    def ok(self) -> bool:
        return self.dead_letter_messages == 0 and all(r.status == "committed" for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def run_local(
    project: Project,
    sync_names: list[str] | None = None,
    *,
    full_resync: bool = False,
    mark_synced: bool = False,
    allow_mass_removal: bool = False,
    trigger: str = "local",
    sender_timeout_s: float = SENDER_TIMEOUT_S,
    driver_options: dict[str, Any] | None = None,
    project_file: str | None = None,
    tick_seconds: float = DEFAULT_TICK_S,
    progress: Progress | None = None,
) -> LocalReport:
    """Run the named syncs (default: every enabled one) through the real handlers on a local stack.

    The planner plans the first wave; the sender takes chunks as they are released while the planner
    ticks every ``tick_seconds`` (checkpoints, next waves, lock renewal, commit), as in AWS: state in
    the warehouse moves forward only for what Segment accepted. ``driver_options`` go to LocalDriver
    (``batch_size``, ``retry_delay_s``, ``deliver_twice``), to rehearse how SQS and Lambda behave.
    ``project_file`` is the file notifications name in the command that shows more. ``progress`` is told
    each step (the CLI draws it; by default nothing is printed). ``mark_synced`` and ``allow_mass_removal``
    go to the planner as its event's fields (a baseline; removals past ``max_removed_share``).
    """
    names = sync_names or [s.name for s in project.syncs if s.enabled]
    for name in names:
        destination = project.sync(name).destination
        _check_write_key(project, destination)
        _check_reachable(project, destination)
    progress = progress or Progress()
    started = time.monotonic()
    progress.phase("starting a local stack (moto on loopback)")
    with local_stack(project_endpoints(project), project_hosts(project)) as stack:
        if project_file:
            os.environ["PROJECT_FILE"] = project_file  # local_stack puts the environment back
        SyncStore(stack.table(SYNCS_TABLE)).push(project)
        sqs = stack.client("sqs")
        driver = LocalDriver(
            sqs,
            stack.queue_url,
            load_handler("planner"),
            load_handler("sender"),
            sender_timeout_s=sender_timeout_s,
            **(driver_options or {}),
        )
        progress.phase(f"planning {', '.join(names)}")
        planned = driver.plan(
            {
                "syncs": names,
                "trigger": trigger,
                "full_resync": full_resync,
                "mark_synced": mark_synced,
                "allow_mass_removal": allow_mass_removal,
            }
        )["runs"]
        runs = RunStore(stack.table(RUNS_TABLE))
        progress.bar("sending", sum(run.get("rows_to_send", 0) for run in _items(runs, planned)), "rows")

        def tick() -> list[dict[str, Any]]:
            """EventBridge's tick: checkpoints, next waves, lock renewal, and commit once all is delivered."""
            live = driver.plan({"action": "continue", "syncs": names, "trigger": trigger})["runs"]
            stack.forget_tracked()
            return live

        stats = driver.drain(progress=progress.advance, tick=tick, tick_seconds=tick_seconds)
        progress.close()
        summaries = [summarize(runs, run["sync"], run["run_id"]) for run in planned]
        dlq = sqs.get_queue_attributes(
            QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    return LocalReport(
        runs=summaries,
        seconds=round(time.monotonic() - started, 3),
        dead_letter_messages=int(dlq),
        sender_invocations=stats.invocations,
    )


def _items(runs: RunStore, planned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [runs.run(run["sync"], run["run_id"]) for run in planned]


def project_endpoints(project: Project) -> list[str]:
    """The API bases the project's destinations name: a local run lets its sender post there."""
    return sorted({c.endpoint for c in project.connections.values() if isinstance(c, SegmentConnection) and c.endpoint})


def _check_write_key(project: Project, destination: str) -> None:
    """Fail before starting when a write key in the environment is missing: every chunk would fail."""
    connection = project.connections[destination]
    if isinstance(connection, SegmentConnection) and connection.write_key.env is not None:
        try:
            resolve(connection.write_key, f"connection '{destination}': Segment write key")
        except SecretError as exc:
            raise ConfigError(str(exc)) from None


def _check_reachable(project: Project, destination: str) -> None:
    """Fail fast on an endpoint nobody listens at, instead of retrying each chunk into the DLQ."""
    connection = project.connections[destination]
    url = urlsplit(connection.api_base)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"connection '{destination}': cannot reach {connection.api_base}: {exc}") from None

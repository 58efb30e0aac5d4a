"""Delivery under faults, through the whole local pipeline (DuckDB → planner → SQS on moto → sender → HTTP).

Every scenario injects a fault Segment, SQS or Lambda really produce, checks that the fault happened,
then checks the same four things:

- the distinct messageIds the endpoint received are exactly those of the rows that should go out
  (computed here from the warehouse rows and the mapper, apart from the pipeline);
- every row was either delivered or is a rejected record with a reason, never both, never neither;
- SEGSYNC.SYNC_STATE holds exactly the delivered rows (state commits after acknowledgement);
- the run summary's counts agree with what the endpoint saw.

Each scenario's figures (rows, sent, received, duplicates on the wire, lost) are collected; with
``SEGSYNC_FAULTS_TABLE=FILE`` the suite writes them as a table into FILE, between its ``faults-table``
markers when it has them (``make faults`` writes the table of docs/faults.md and prints it).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from segsync import segment
from segsync.chunks import dump_row
from segsync.cli import main
from segsync.config import Project, load_project
from segsync.local.capture import CaptureServer, FaultPlan, read_captured
from segsync.local.driver import LambdaContext, LocalDriver, load_handler
from segsync.local.run import project_endpoints, run_local
from segsync.local.stack import RUNS_TABLE, SYNCS_TABLE, LocalStack, local_stack
from segsync.mapping import Mapped, Mapper, row_message_id
from segsync.queue import ChunkQueue
from segsync.segment import SegmentClient
from segsync.sender import ChunkOutcome, RateLimiter, Sender
from segsync.state import WarehouseState
from segsync.store import RunStore, SyncStore
from segsync.summary import SyncSummary, summarize
from segsync.warehouse.duckdb import DuckDBWarehouse

from ..conftest import point_at
from ..markdown import replace_between

# An invocation that records no metric (a crashed planner, a finalize, a sender that only skipped a
# counted chunk) makes Powertools warn when it flushes; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

USERS = "demo-users"
EVENTS = "demo-events"
SENDER_TIMEOUT_S = 8.0
"""Lambda's timeout as the local driver plays it: 3 s to deliver a chunk after the handler's 5 s margin."""


# ---------------------------------------------------------------------------------------- figures


@dataclass
class Figures:
    scenario: str
    rows: int
    sent: int
    received: int
    duplicates: int
    rejected: int
    lost: int
    requests: int
    faults: str
    seconds: float


FIGURES: list[Figures] = []
FAULTS_TABLE_MARKER = "faults-table"
COLUMNS = (
    ("scenario", "scenario"),
    ("rows", "rows"),
    ("sent", "sent"),
    ("received", "received"),
    ("duplicates on the wire", "duplicates"),
    ("rejected", "rejected"),
    ("lost", "lost"),
    ("requests", "requests"),
    ("faults injected", "faults"),
    ("seconds", "seconds"),
)


@pytest.fixture(scope="module", autouse=True)
def figures_table() -> Iterator[None]:
    """Write the collected figures where SEGSYNC_FAULTS_TABLE says, as a Markdown table (in its place in a page)."""
    FIGURES.clear()
    yield
    target = os.environ.get("SEGSYNC_FAULTS_TABLE")
    if not target or not FIGURES:
        return
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    for figures in FIGURES:
        values = [getattr(figures, name) for _, name in COLUMNS]
        lines.append("| " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in values) + " |")
    table = "\n".join(lines) + "\n"
    page = Path(target)
    if page.exists() and FAULTS_TABLE_MARKER in page.read_text():
        table = replace_between(page.read_text(), FAULTS_TABLE_MARKER, table)
    page.write_text(table)


# ---------------------------------------------------------------------------------------- the oracle


def _project(project_file: Path, endpoint: str, events_per_second: int = 1_000_000) -> Project:
    return load_project(point_at(project_file, endpoint, events_per_second))


def expected_messages(project: Project, syncs: list[str]) -> dict[str, tuple[str, str]]:
    """messageId → (sync, key) of every model row on its first delivery, mapped straight from the warehouse
    (no pipeline): the key texts and row hashes of the warehouse's own keyed rows, the ids they make."""
    expected: dict[str, tuple[str, str]] = {}
    for name in syncs:
        sync = project.sync(name)
        with DuckDBWarehouse(project.connections[sync.source], read_only=True) as warehouse:
            state = WarehouseState(warehouse, "SEGSYNC")
            columns = state.model_columns(sync.sql)
            keyed = state.keyed(sync, columns, f"SELECT * FROM ({sync.sql}) AS src")
            rows = [row for batch in warehouse.stream(keyed, 10_000) for row in batch.rows]
        mapper = Mapper(sync, [c.name for c in columns])
        for key, _, row_hash, *values in rows:
            chunk_row = [key, row_message_id(sync, key, None, row_hash, None), *values]
            mapped = mapper.map(orjson.loads(dump_row(chunk_row)))
            assert isinstance(mapped, Mapped), mapped
            expected[orjson.loads(mapped.body)["messageId"]] = (name, mapped.key)
    return expected


def _warehouse(project: Project, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect(project.connections["warehouse"].path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def check(
    scenario: str,
    project: Project,
    capture: CaptureServer,
    summaries: list[SyncSummary],
    *,
    started: float,
    rejected: set[tuple[str, str]] = frozenset(),
    pipeline_faults: str = "",
) -> Figures:
    """The four guarantees, then the scenario's figures.

    ``rejected``: the (sync, key)s that must not go out; ``pipeline_faults``: what the test injected
    outside the endpoint, for the figures.
    """
    assert capture.wait_idle(), "the capture endpoint is still answering a request"
    syncs = [s.sync for s in summaries]
    expected = expected_messages(project, syncs)
    received = Counter(m["messageId"] for m in read_captured(capture.out_path))
    should_arrive = {i for i, row in expected.items() if row not in rejected}

    # 1. The distinct messageIds received are exactly the ones expected: nothing lost, nothing foreign.
    assert set(received) == should_arrive, {
        "lost": len(should_arrive - set(received)),
        "foreign": len(set(received) - should_arrive),
    }

    # 2. Every row is delivered or a rejected record with a reason (and only the expected ones are rejected).
    run_ids = [s.run_id for s in summaries]
    records = _warehouse(
        project,
        f"SELECT SYNC, ROW_KEY, REASON FROM SEGSYNC.REJECTED_RECORDS WHERE RUN_ID IN ({', '.join('?' * len(run_ids))})",
        run_ids,
    )
    assert all(reason for _, _, reason in records)
    assert {(sync, key) for sync, key, _ in records} == set(rejected)
    delivered = {expected[i] for i in received}
    assert delivered | set(rejected) == set(expected.values())
    assert not delivered & set(rejected)

    # 3. State holds exactly the delivered rows.
    for name in syncs:
        state = {k for (k,) in _warehouse(project, "SELECT ROW_KEY FROM SEGSYNC.SYNC_STATE WHERE SYNC = ?", [name])}
        assert state == {key for sync, key in delivered if sync == name}, name

    # 4. The run summary agrees with the endpoint.
    assert all(s.status == "committed" for s in summaries), [(s.sync, s.status, s.error) for s in summaries]
    assert sum(s.sent for s in summaries) == len(received)
    assert sum(s.rejected for s in summaries) == len(rejected)
    assert sum(s.committed for s in summaries) == len(delivered)

    figures = Figures(
        scenario=scenario,
        rows=len(expected),
        sent=sum(s.sent for s in summaries),
        received=capture.messages,
        duplicates=capture.messages - len(received),
        rejected=len(rejected),
        lost=len(should_arrive - set(received)),
        requests=capture.requests,
        faults=", ".join(
            [f"{_fault_name(kind)}: {count}" for kind, count in sorted(capture.faults_injected.items())]
            + ([pipeline_faults] if pipeline_faults else [])
        ),
        seconds=round(time.monotonic() - started, 1),
    )
    assert figures.lost == 0
    FIGURES.append(figures)
    return figures


def _fault_name(kind: str) -> str:
    return f"HTTP {kind}" if kind.isdigit() else kind


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def write_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "faults-write-key")


@pytest.fixture
def chunks_of_50(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 users in 6 chunks (one batch each): enough requests for the faults to land on."""
    monkeypatch.setenv("CHUNK_ROWS", "50")


@contextmanager
def faulty(tmp_path: Path, faults: FaultPlan) -> Iterator[CaptureServer]:
    with CaptureServer(tmp_path / "captured.ndjson", faults=faults) as capture:
        yield capture


@dataclass
class Pipeline:
    """A local stack driven step by step, for faults that happen between the steps run_local takes."""

    stack: LocalStack
    driver: LocalDriver
    runs: RunStore

    def plan(self, sync: str) -> dict[str, Any]:
        [run] = self.driver.plan({"syncs": [sync], "trigger": "test"})["runs"]
        return run

    def tick(self, sync: str) -> None:
        """The planner's tick for the sync's live run: checkpoint, next waves, commit once all is delivered."""
        self.driver.plan({"action": "continue", "syncs": [sync], "trigger": "test"})

    def dead_letters(self) -> int:
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])


@contextmanager
def pipeline(project: Project, **driver_options: Any) -> Iterator[Pipeline]:
    with local_stack(project_endpoints(project)) as stack:
        SyncStore(stack.table(SYNCS_TABLE)).push(project)
        driver = LocalDriver(
            stack.client("sqs"), stack.queue_url, load_handler("planner"), load_handler("sender"), **driver_options
        )
        yield Pipeline(stack, driver, RunStore(stack.table(RUNS_TABLE)))


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> list[ChunkOutcome]:
    """Every chunk outcome the sender returns (duplicate=True: it was already counted)."""
    seen: list[ChunkOutcome] = []
    real = Sender.process

    def process(self: Sender, body: str, deadline: float) -> ChunkOutcome:
        outcome = real(self, body, deadline)
        seen.append(outcome)
        return outcome

    monkeypatch.setattr(Sender, "process", process)
    return seen


# ---------------------------------------------------------------------------------------- Segment faults


def test_twenty_percent_random_5xx_are_retried_and_every_row_arrives(project_file, tmp_path, monkeypatch):
    # Given an endpoint that answers 500 to 20% of requests (seeded) and chunks of 100 rows
    monkeypatch.setenv("CHUNK_ROWS", "100")
    started = time.monotonic()
    with faulty(tmp_path, FaultPlan(error_rate=0.2, error_status=500, seed=7)) as capture:
        project = _project(project_file, capture.url)

        # When both demo syncs run
        report = run_local(project, sender_timeout_s=SENDER_TIMEOUT_S)

        # Then faults were answered, and still every row arrived once as Segment sees it, and committed
        assert capture.statuses[500] == capture.faults_injected["500"] >= 3
        figures = check("20% random HTTP 500 (seeded)", project, capture, report.runs, started=started)
    assert report.ok and figures.duplicates == 0


def test_bursts_of_429_are_waited_out_and_slow_the_sender_down(project_file, tmp_path, chunks_of_50, monkeypatch):
    # Given bursts of 429 with Retry-After: 0.1 s, and a pace of 20,000 events/s
    throttles: list[tuple[float, float | None]] = []
    real = RateLimiter.throttled

    def throttled(self: RateLimiter, retry_after: float | None = None) -> None:
        real(self, retry_after)
        throttles.append((self.rate, retry_after))

    monkeypatch.setattr(RateLimiter, "throttled", throttled)
    faults = FaultPlan(sequence=[429, 429, 429, "ok", "ok", 429, 429, 429, 429, "ok", 429], retry_after=0.1)
    started = time.monotonic()
    with faulty(tmp_path, faults) as capture:
        project = _project(project_file, capture.url, events_per_second=20_000)

        # When the users sync runs
        report = run_local(project, [USERS], sender_timeout_s=SENDER_TIMEOUT_S)

        # Then each 429 halved the pace, honouring Retry-After, and nothing was lost or doubled
        assert capture.statuses[429] == 8
        assert throttles == [(20_000 / 2**n, 0.1) for n in range(1, 9)]
        figures = check("bursts of 429, Retry-After 0.1 s", project, capture, report.runs, started=started)
    assert figures.duplicates == 0


def test_connection_resets_before_and_after_segment_accepted_a_batch(project_file, tmp_path, chunks_of_50):
    # Given resets with no answer, two of them after the batch was accepted (the acknowledgement is lost)
    faults = FaultPlan(sequence=["reset", "ok", "reset_after", "reset", "ok", "reset_after", "ok"])
    started = time.monotonic()
    with faulty(tmp_path, faults) as capture:
        project = _project(project_file, capture.url)

        # When the users sync runs
        report = run_local(project, [USERS], sender_timeout_s=SENDER_TIMEOUT_S)

        # Then the lost acknowledgements cost one duplicate batch each on the wire, which Segment dedupes
        figures = check("connection resets (2 after acceptance)", project, capture, report.runs, started=started)
    assert capture.faults_injected == {"reset": 2, "reset_after": 2}
    assert figures.duplicates == 2 * 50


def test_responses_slower_than_the_read_timeout_are_retried(project_file, tmp_path, chunks_of_50, monkeypatch):
    # Given a sender that waits 0.25 s for an answer, and an endpoint that sometimes answers after 0.8 s
    monkeypatch.setenv("SEGMENT_READ_TIMEOUT_S", "0.25")
    faults = FaultPlan(sequence=["slow", "ok", "slow", "slow", "ok"], slow_seconds=0.8)
    started = time.monotonic()
    with faulty(tmp_path, faults) as capture:
        project = _project(project_file, capture.url)

        # When the users sync runs
        report = run_local(project, [USERS], sender_timeout_s=SENDER_TIMEOUT_S)

        # Then each slow answer was given up on and the batch resent: the slow copies arrive as duplicates
        figures = check("responses slower than the read timeout", project, capture, report.runs, started=started)
    assert capture.faults_injected == {"slow": 3}
    assert figures.duplicates == 3 * 50


def test_one_bad_message_in_a_batch_is_bisected_out_and_rejected(project_file, tmp_path, chunks_of_50):
    # Given an endpoint that refuses (400) any batch holding user_000042's message
    faults = FaultPlan(reject_if=lambda m: m.get("userId") == "user_000042")
    started = time.monotonic()
    with faulty(tmp_path, faults) as capture:
        project = _project(project_file, capture.url)

        # When the users sync runs
        report = run_local(project, [USERS], sender_timeout_s=SENDER_TIMEOUT_S)

        # Then only that message became a rejected record (with Segment's answer as the reason)
        figures = check(
            "one bad message in a batch (400, bisect)",
            project,
            capture,
            report.runs,
            started=started,
            rejected={(USERS, "user_000042")},
        )
    [(reason,)] = _warehouse(project, "SELECT REASON FROM SEGSYNC.REJECTED_RECORDS WHERE ROW_KEY = 'user_000042'")
    assert "HTTP 400" in reason
    assert capture.statuses[400] >= 5 and figures.duplicates == 0
    assert _warehouse(project, "SELECT COUNT(*) FROM SEGSYNC.SYNC_STATE WHERE ROW_KEY = 'user_000042'") == [(0,)]


# ---------------------------------------------------------------------------------------- Lambda and SQS faults


def test_a_sender_that_dies_mid_chunk_resends_the_chunk_and_counts_it_once(
    project_file, tmp_path, chunks_of_50, monkeypatch
):
    # Given batches of 20 (a chunk of 50 goes in 3), and a sender process that dies right after Segment
    # accepted the second batch of the first chunk, before the chunk was counted
    monkeypatch.setattr(segment, "MAX_BATCH_MESSAGES", 20)
    calls = Counter()
    real = SegmentClient.send

    def send(self: SegmentClient, messages, deadline):
        result = real(self, messages, deadline)
        calls["send"] += 1
        if calls["send"] == 2:
            raise RuntimeError("injected: the sender died after Segment accepted a batch")
        return result

    monkeypatch.setattr(SegmentClient, "send", send)
    started = time.monotonic()
    with faulty(tmp_path, FaultPlan()) as capture:
        project = _project(project_file, capture.url)

        # When the users sync runs
        report = run_local(project, [USERS], sender_timeout_s=SENDER_TIMEOUT_S)

        # Then SQS redelivered the chunk, all of it went again, and it was counted once
        figures = check(
            "sender dies mid-chunk (after 2 of 3 batches)",
            project,
            capture,
            report.runs,
            started=started,
            pipeline_faults="sender crash: 1",
        )
    assert figures.duplicates == 40
    assert report.runs[0].batches == 18  # the 3 batches of each of 6 chunks, once


def test_the_same_sqs_message_delivered_twice_is_sent_and_counted_once(project_file, tmp_path, chunks_of_50, outcomes):
    # Given SQS hands every chunk to the sender twice (at-least-once delivery)
    started = time.monotonic()
    with faulty(tmp_path, FaultPlan()) as capture:
        project = _project(project_file, capture.url)

        # When the users sync runs
        report = run_local(
            project, [USERS], sender_timeout_s=SENDER_TIMEOUT_S, driver_options={"deliver_twice": lambda m: True}
        )

        # Then the second delivery of each found it counted: nothing resent, nothing counted twice
        figures = check(
            "same SQS message delivered twice",
            project,
            capture,
            report.runs,
            started=started,
            pipeline_faults="SQS redelivery: 6",
        )
    assert [o.duplicate for o in outcomes].count(True) == 6 and len(outcomes) == 12
    assert figures.duplicates == 0
    history = _warehouse(project, "SELECT STATUS, SENT, COMMITTED FROM SEGSYNC.SYNC_RUNS WHERE SYNC = ?", [USERS])
    assert history == [("committed", 300, 300)]


def test_a_duplicate_delivered_while_the_first_is_in_flight_is_counted_once(
    project_file, tmp_path, chunks_of_50, outcomes, monkeypatch
):
    # Given a second sender (another Lambda container) gets chunk 2 while the first one has sent it
    # but not yet counted it
    other_container = load_handler("sender")
    bodies: list[str] = []
    real_process, real_record = Sender.process, RunStore.record_chunk
    other: dict[str, Any] = {}

    def process(self: Sender, body: str, deadline: float) -> ChunkOutcome:
        bodies.append(body)
        return real_process(self, body, deadline)

    def record_chunk(self: RunStore, run_id: str, number: int, tally: Any) -> bool:
        if number == 2 and "answer" not in other:
            other["answer"] = None  # once: the other container's delivery comes through here too
            other["answer"] = other_container({"Records": [_sqs_record(bodies[-1])]}, LambdaContext("other", 8.0))
        return real_record(self, run_id, number, tally)

    monkeypatch.setattr(Sender, "process", process)
    monkeypatch.setattr(RunStore, "record_chunk", record_chunk)
    started = time.monotonic()
    with faulty(tmp_path, FaultPlan()) as capture:
        project = _project(project_file, capture.url)

        # When the users sync runs
        report = run_local(project, [USERS], sender_timeout_s=SENDER_TIMEOUT_S)

        # Then chunk 2 went out twice, but only the copy that counted first was counted
        figures = check(
            "duplicate delivered while in flight",
            project,
            capture,
            report.runs,
            started=started,
            pipeline_faults="concurrent duplicate: 1",
        )
    assert other["answer"] == {"batchItemFailures": []}
    assert [(o.number, o.duplicate) for o in outcomes if o.duplicate] == [(2, True)]
    assert figures.duplicates == 50


def _sqs_record(body: str) -> dict[str, Any]:
    return {
        "messageId": "duplicate-delivery",
        "receiptHandle": "duplicate-delivery",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:segsync-chunks",
        "awsRegion": "us-east-1",
    }


class PlannerCrash(BaseException):
    """A planner that dies mid-invocation (a Lambda timeout, out of memory): no handler can catch it."""


def test_a_planner_crash_after_enqueueing_is_recovered_at_the_next_tick_and_nothing_goes_out_twice(
    project_file, tmp_path, chunks_of_50, monkeypatch
):
    # Given a planner that dies right after queueing its first wave, before recording it. Its stretch of the
    # destination's release schedule is never given back, so the wave queued again waits that stretch out:
    # a plan-ahead of 3 s keeps that wait short (at the default 300 s it would be five minutes).
    monkeypatch.setenv("PLAN_AHEAD_SECONDS", "3")
    real_send_all = ChunkQueue.send_all

    def send_all_then_die(self: ChunkQueue, bodies):
        real_send_all(self, bodies)
        raise PlannerCrash("injected: the planner died after enqueueing")

    monkeypatch.setattr(ChunkQueue, "send_all", send_all_then_die)
    started = time.monotonic()
    with faulty(tmp_path, FaultPlan()) as capture:
        project = _project(project_file, capture.url)
        with pipeline(project, sender_timeout_s=SENDER_TIMEOUT_S) as p:
            with pytest.raises(PlannerCrash):
                p.plan(USERS)
            monkeypatch.setattr(ChunkQueue, "send_all", real_send_all)
            crashed = p.runs.lock(USERS)["run_id"]

            # When the senders deliver its chunks, and the planner's next tick comes
            p.driver.drain()
            assert capture.wait_idle() and capture.messages == 300
            p.tick(USERS)

            # Then the tick queued the unrecorded wave again (the same chunks, already counted: nothing is
            # sent twice), and the tick after that commits the run: no lock expiry to wait for
            p.driver.drain()
            p.tick(USERS)
            summary = summarize(p.runs, USERS, crashed)

        figures = check(
            "planner crash after enqueueing",
            project,
            capture,
            [summary],
            started=started,
            pipeline_faults="planner crash: 1",
        )
    assert summary.status == "committed" and summary.committed == 300
    assert figures.duplicates == 0
    assert dict(_warehouse(project, "SELECT RUN_ID, STATUS FROM SEGSYNC.SYNC_RUNS")) == {crashed: "committed"}


def test_a_chunk_that_exhausts_its_receives_waits_in_the_dlq_until_redriven(
    project_file, tmp_path, chunks_of_50, capsys
):
    # Given an outage that hits only the chunk holding user_000123 (503 to every batch with it)
    faults = FaultPlan(fail_if=lambda m: m.get("userId") == "user_000123", error_status=503)
    started = time.monotonic()
    with faulty(tmp_path, faults) as capture:
        project = _project(project_file, capture.url)
        # one chunk per invocation, retried at once: a 0.5 s budget per receive
        with pipeline(project, sender_timeout_s=5.5, batch_size=1, retry_delay_s=0) as p:
            run = p.plan(USERS)

            # When the queue is drained and the planner ticks
            p.driver.drain()
            p.tick(USERS)

            # Then that chunk is parked in the DLQ after 5 receives, and nothing is committed
            assert p.dead_letters() == 1
            item = p.runs.run(USERS, run["run_id"])
            assert (item["status"], item["chunks_done"], item["chunks_enqueued"]) == ("sending", 5, 6)
            assert _warehouse(project, "SELECT COUNT(*) FROM SEGSYNC.SYNC_STATE") == [(0,)]

            # And `segsync dlq show` names it, with its first error, without any row contents
            endpoint = ["--endpoint", p.stack.endpoint]
            assert main(["dlq", "show", *endpoint, "--json"]) == 0
            [parked] = orjson.loads(capsys.readouterr().out)["parked"]
            assert (parked["sync"], parked["run_id"], parked["chunk"], parked["rows"]) == (USERS, run["run_id"], 3, 50)
            assert parked["failures"] == 5 and parked["receives"] >= 5
            assert parked["run_status"] == "sending" and not parked["delivered"]
            assert "HTTP 503" in parked["first_error"]
            assert main(["dlq", "show", *endpoint]) == 0
            shown = capsys.readouterr().out
            assert "demo-users" in shown and "HTTP 503" in shown
            assert "user_000123" not in shown and "@example.com" not in shown

            # When the outage ends and the DLQ is redriven
            faults.fail_if = None
            assert main(["dlq", "redrive", *endpoint, "--json"]) == 0
            assert orjson.loads(capsys.readouterr().out)["moved"] == 1
            assert p.dead_letters() == 0
            p.driver.drain()
            p.tick(USERS)
            summary = summarize(p.runs, USERS, run["run_id"])

        # Then the chunk is delivered, the run completes and commits every row
        assert capture.statuses[503] == capture.faults_injected["fail_if"] >= 5
        figures = check(
            "chunk exhausts its receives → DLQ → redrive",
            project,
            capture,
            [summary],
            started=started,
            pipeline_faults="receive failed: 5",
        )
    assert figures.duplicates == 0


# ---------------------------------------------------------------------------------------- rehearsing


def test_a_user_can_rehearse_faults_with_run_local_and_never_needs_the_real_write_key(
    project_file, capsys, monkeypatch
):
    # Given a project whose write key is not in this environment
    monkeypatch.delenv("SEGMENT_WRITE_KEY")

    # When it is run locally against a capture endpoint that answers 500, then loses one acknowledgement
    argv = ["run", "--local", str(project_file), "--sync", USERS, "--json"]
    code = main([*argv, "--faults", "seq=500,reset_after", "--capture-port", "0"])

    # Then every user arrives, the batch twice on the wire, and the figures say so
    result = orjson.loads(capsys.readouterr().out)
    assert code == 0 and result["ok"], result
    assert (result["requests"], result["answers"], result["unanswered"]) == (3, "200: 1, 500: 1", 1)
    assert (result["received"], result["distinct"], result["duplicates"]) == (600, 300, 300)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["demo", "--endpoint", "http://127.0.0.1:9", "--faults", "seq=500"], "cannot reach --endpoint"),
        (["run", "demo-users", "--stack", "segsync-prod", "--faults", "seq=500"], "not in a deployed one"),
        (["run", "PROJECT", "--local", "--faults", "seq=500,boom"], "fault 'boom'"),
    ],
)
def test_a_fault_plan_that_cannot_apply_is_refused_before_anything_runs(argv, says, project_file, tmp_path, capsys):
    demo_dir = tmp_path / "demo"
    argv = [str(project_file) if a == "PROJECT" else a for a in argv]
    code = main([*argv, "--dir", str(demo_dir)] if argv[0] == "demo" else argv)
    assert code == 2 and says in capsys.readouterr().err
    assert not demo_dir.exists()

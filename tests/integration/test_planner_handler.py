"""The planner Lambda handler under moto, on a real DuckDB file."""

from __future__ import annotations

import os
import time

import duckdb
import orjson

from segsync.chunks import decode
from segsync.local.driver import LambdaContext
from segsync.store import RunStore

from ..conftest import EVENTS


def _context() -> LambdaContext:
    return LambdaContext("segsync-planner", timeout_s=900)


def _queued_chunks(stack) -> list:
    sqs = stack.client("sqs")
    chunks = []
    while messages := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
        chunks.extend(decode(m["Body"]) for m in messages)
    return chunks


def _runs(stack) -> RunStore:
    return RunStore(stack.table(os.environ["RUNS_TABLE"]))


def _latest_runs(stack) -> dict[str, dict]:
    """Each sync's newest run item, as the run history lists it."""
    store = _runs(stack)
    return {name: store.runs(name, limit=1)[0] for name in ("demo-users", "demo-events") if store.runs(name, limit=1)}


def test_the_schedule_event_plans_every_enabled_sync_into_chunks(stack, pushed_project, planner_handler):
    # Given the sample schedule event and two syncs (without a schedule of their own) in the syncs table
    event = orjson.loads((EVENTS / "planner-schedule.json").read_bytes())

    # When the planner handles it (outside Lambda, each sync's invocation runs inline)
    response = planner_handler(event, _context())

    # Then both syncs are dispatched and every model row is queued exactly once, in order-numbered chunks
    assert sorted(d["sync"] for d in response["dispatched"]) == ["demo-events", "demo-users"]
    runs = _latest_runs(stack)
    assert set(runs) == {"demo-users", "demo-events"}
    assert runs["demo-users"]["rows_read"] == 300
    assert runs["demo-events"]["rows_read"] == 2_000
    chunks = _queued_chunks(stack)
    for name, rows in (("demo-users", 300), ("demo-events", 2_000)):
        mine = [c for c in chunks if c.run_id == runs[name]["run_id"]]
        assert sorted(c.number for c in mine) == list(range(1, len(mine) + 1))
        assert sum(len(c.rows) for c in mine) == rows
        assert _runs(stack).run(name, runs[name]["run_id"])["status"] == "sending"


def test_a_run_request_for_one_sync_plans_only_that_sync(stack, pushed_project, planner_handler):
    # Given the sample run request naming demo-users
    event = orjson.loads((EVENTS / "planner-run-sync.json").read_bytes())

    # When the planner handles it
    response = planner_handler(event, _context())

    # Then only that sync ran, and its run records who asked
    assert [r["sync"] for r in response["runs"]] == ["demo-users"]
    assert _runs(stack).run("demo-users", response["runs"][0]["run_id"])["trigger"] == "manual"


def test_a_tick_on_lambda_invokes_the_planner_once_per_due_sync_and_only_once_per_tick(
    stack, pushed_project, monkeypatch
):
    # Given demo-users due hourly and demo-events without a schedule (due at every tick)
    from segsync.handlers import plan_event
    from segsync.settings import PlannerSettings
    from segsync.store import SyncStore

    users = pushed_project.sync("demo-users").model_copy(update={"schedule": "rate(1 hour)"})
    SyncStore(stack.table(os.environ["SYNCS_TABLE"])).push(
        pushed_project.model_copy(update={"syncs": [users, pushed_project.sync("demo-events")]})
    )
    invoked: list[dict] = []
    settings = PlannerSettings.from_env()

    # When the tick comes twice within the same hour (EventBridge Scheduler delivers at least once)
    first = plan_event({"trigger": "schedule"}, settings, invoke=invoked.append)
    second = plan_event({"trigger": "schedule"}, settings, invoke=invoked.append)

    # Then each sync was dispatched in its own invocation the first time; the second tick starts only
    # the sync that has no schedule
    assert sorted(d["sync"] for d in first["dispatched"]) == ["demo-events", "demo-users"]
    assert [d["sync"] for d in second["dispatched"]] == ["demo-events"]
    assert {"sync": "demo-users", "action": "run", "trigger": "schedule"} in invoked
    assert _queued_chunks(stack) == []


def test_failing_model_sql_fails_that_sync_only_and_quotes_the_warehouse(
    stack, pushed_project, planner_handler, tmp_path
):
    # Given one sync whose model selects from a table that does not exist
    from segsync.store import SyncStore

    broken = pushed_project.sync("demo-users").model_copy(update={"model": "SELECT * FROM no_such_table"})
    SyncStore(stack.table(os.environ["SYNCS_TABLE"])).push(
        pushed_project.model_copy(update={"syncs": [broken, pushed_project.sync("demo-events")]})
    )

    # When the schedule ticks
    planner_handler({"trigger": "schedule"}, _context())

    # Then that run failed with the sync's name and DuckDB's words; the other sync was planned
    runs = _latest_runs(stack)
    assert runs["demo-users"]["status"] == "failed"
    assert "sync 'demo-users'" in runs["demo-users"]["error"]
    assert "no_such_table" in runs["demo-users"]["error"]
    assert runs["demo-events"]["status"] == "sending"


def test_a_sync_item_broken_in_the_console_fails_naming_the_field(stack, pushed_project, planner_handler):
    # Given someone removed the key of demo-users in the DynamoDB console
    table = stack.table(os.environ["SYNCS_TABLE"])
    table.update_item(
        Key={"kind": "sync", "name": "demo-users"},
        UpdateExpression="REMOVE #k",
        ExpressionAttributeNames={"#k": "key"},
    )

    # When the schedule ticks
    planner_handler({"trigger": "schedule"}, _context())

    # Then that sync's run fails naming the sync and the field; the other sync runs
    runs = _latest_runs(stack)
    assert runs["demo-users"]["status"] == "failed"
    assert "sync 'demo-users'" in runs["demo-users"]["error"]
    assert "key" in runs["demo-users"]["error"]
    assert runs["demo-events"]["status"] == "sending"


def test_a_mapped_column_missing_from_the_model_fails_the_run_naming_it(stack, pushed_project, planner_handler):
    # Given demo-users maps a trait to a column the model does not return
    from segsync.store import SyncStore

    sync = pushed_project.sync("demo-users")
    broken = sync.model_copy(update={"traits": {**sync.traits, "phone": "phone_number"}})
    SyncStore(stack.table(os.environ["SYNCS_TABLE"])).push(pushed_project.model_copy(update={"syncs": [broken]}))

    # When it runs
    response = planner_handler({"sync": "demo-users"}, _context())

    # Then the run fails before anything is queued, naming the field and the column
    run = response["runs"][0]
    assert run["status"] == "failed"
    assert "traits.phone" in run["error"] and "phone_number" in run["error"]
    assert _queued_chunks(stack) == []


def test_null_and_duplicate_keys_are_rejected_by_key_and_the_rest_are_queued(
    stack, pushed_project, planner_handler, small_warehouse
):
    # Given two users share a key and one has no key at all
    with duckdb.connect(str(small_warehouse)) as con:
        con.execute("UPDATE users SET user_id = 'user_000002' WHERE user_id = 'user_000001'")
        con.execute("UPDATE users SET user_id = NULL WHERE user_id = 'user_000003'")

    # When demo-users runs
    response = planner_handler({"sync": "demo-users"}, _context())

    # Then the three rows are rejected records naming their keys, and the other 297 are queued
    run = response["runs"][0]
    assert run["rejected"] == 3
    with duckdb.connect(str(small_warehouse), read_only=True) as con:
        rejections = con.execute(
            "SELECT ROW_KEY, REASON FROM SEGSYNC.REJECTED_RECORDS WHERE RUN_ID = ?", [run["run_id"]]
        ).fetchall()
    assert sorted((key or "<null>", reason) for key, reason in rejections) == [
        ("<null>", "key column 'user_id' is null"),
        ("user_000002", "duplicate key: 2 rows share it"),
        ("user_000002", "duplicate key: 2 rows share it"),
    ]
    assert sum(len(c.rows) for c in _queued_chunks(stack)) == 297


def test_a_tick_continues_the_live_run_of_a_sync_that_is_not_due(stack, pushed_project):
    # Given demo-users (due hourly) started this hour, its run still live
    from segsync.handlers import plan_event
    from segsync.settings import PlannerSettings
    from segsync.store import SyncStore

    users = pushed_project.sync("demo-users").model_copy(update={"schedule": "rate(1 hour)"})
    SyncStore(stack.table(os.environ["SYNCS_TABLE"])).push(pushed_project.model_copy(update={"syncs": [users]}))
    runs = _runs(stack)
    runs.claim_schedule("demo-users", None, time.time())
    assert runs.begin("demo-users", "run-1", 600, trigger="schedule") is None
    invoked: list[dict] = []

    # When the tick comes
    plan_event({"trigger": "schedule"}, PlannerSettings.from_env(), invoke=invoked.append)

    # Then the sync is not run again, but its live run is moved along (checkpoints, next waves, commit)
    assert [e for e in invoked if e["sync"] == "demo-users"] == [
        {"sync": "demo-users", "action": "continue", "trigger": "schedule"}
    ]

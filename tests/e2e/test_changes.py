"""Audience syncs through the whole local pipeline: change events, removals, the mass-removal guard, baselines.

The issue's own checks, on DuckDB with `segsync run --local`: a ``behavior: changes`` sync on a 100-row table
sends 100 ``added`` events; deleting 5 rows and changing 3 sends exactly 5 ``removed`` (with the properties last
delivered) and 3 ``changed``; a rerun sends nothing. A User sync with ``on_removal: clear`` sends one identify
with null traits per removed key. An emptied table sends no removals and the run fails with the reason. A
baseline (``--mark-synced``) sends nothing, and the next run sends only what changed since.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml

from segsync.cli import main
from segsync.local.capture import CaptureServer, read_captured

TRIALS = {
    "name": "trials", "object": "track", "behavior": "changes", "source": "warehouse", "destination": "segment",
    "model": "SELECT * FROM members", "key": "user_id", "user_id": "user_id",
    "events": {"added": "Trial Started", "changed": "Trial Changed", "removed": "Trial Ended"},
    "properties": {"plan": "plan", "seats": "seats", "renews_on": "renews_on"},
}  # fmt: skip
MEMBERS = {
    "name": "members", "object": "user", "source": "warehouse", "destination": "segment",
    "model": "SELECT * FROM members", "key": "user_id", "on_removal": "clear",
    "traits": {"plan": "plan", "seats": "seats", "source": {"value": "warehouse"}},
}  # fmt: skip


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """100 members: u001..u100, plans and seats by number, a renewal timestamp."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE members AS SELECT 'u' || lpad(CAST(i AS VARCHAR), 3, '0') AS user_id, "
            "CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'trial' END AS plan, i AS seats, "
            "TIMESTAMP '2026-01-01 00:00:00' + to_days(CAST(i AS INTEGER)) AS renews_on FROM range(1, 101) AS t(i)"
        )
    return path


def _project(tmp_path: Path, warehouse: Path, capture: CaptureServer, *syncs: dict[str, Any]) -> Path:
    project = {
        "connections": {
            "warehouse": {"type": "duckdb", "path": str(warehouse)},
            "segment": {"type": "segment", "endpoint": capture.url, "write_key": {"env": "SEGMENT_WRITE_KEY"},
                        "events_per_second": 1_000_000},
        },
        "syncs": list(syncs),
    }  # fmt: skip
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def write_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "changes-write-key")


def _run(project: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, Any]]:
    code = main(["run", "--local", str(project), "--json", "--tick-seconds", "0.2", *flags])
    return code, orjson.loads(capsys.readouterr().out)["runs"][0]


def _sent_since(capture: CaptureServer, before: int) -> list[dict[str, Any]]:
    return read_captured(capture.out_path)[before:]


def _execute(warehouse: Path, *statements: str) -> None:
    with duckdb.connect(str(warehouse)) as con:
        for statement in statements:
            con.execute(statement)


def _state_keys(warehouse: Path, sync: str) -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("SELECT ROW_KEY FROM SEGSYNC.SYNC_STATE WHERE SYNC = ? ORDER BY 1", [sync]).fetchall()
    return [r[0] for r in rows]


def test_change_events_added_then_exactly_the_removed_and_changed_then_nothing(tmp_path, warehouse, capture, capsys):
    # Given a changes sync on a 100-row table
    project = _project(tmp_path, warehouse, capture, TRIALS)

    # When it runs for the first time
    code, first = _run(project, capsys)

    # Then every row is one 'Trial Started' event, stamped with the time the run found it
    added = _sent_since(capture, 0)
    assert code == 0 and (first["status"], first["new"], first["sent"]) == ("committed", 100, 100)
    assert len(added) == 100 and {m["event"] for m in added} == {"Trial Started"}
    assert {m["userId"] for m in added} == {f"u{i:03d}" for i in range(1, 101)}
    assert len({m["timestamp"] for m in added}) == 1
    found = datetime.fromisoformat(added[0]["timestamp"])
    assert abs((datetime.now(UTC) - found).total_seconds()) < 300
    delivered = {m["userId"]: m["properties"] for m in added}
    assert delivered["u007"] == {"plan": "trial", "seats": 7, "renews_on": "2026-01-08T00:00:00+00:00"}

    # When 5 members leave and 3 change plan
    gone = ["u003", "u010", "u041", "u077", "u100"]
    changed = ["u005", "u050", "u099"]
    _execute(
        warehouse,
        f"DELETE FROM members WHERE user_id IN ({', '.join(repr(k) for k in gone)})",
        f"UPDATE members SET plan = 'enterprise', seats = seats + 1000 WHERE user_id IN "
        f"({', '.join(repr(k) for k in changed)})",
    )
    code, second = _run(project, capsys)

    # Then exactly 5 'Trial Ended' go out, carrying the properties last delivered, and 3 'Trial Changed'
    sent = _sent_since(capture, 100)
    ended = {m["userId"]: m for m in sent if m["event"] == "Trial Ended"}
    moved = {m["userId"]: m for m in sent if m["event"] == "Trial Changed"}
    assert code == 0 and len(sent) == 8
    assert (second["removed"], second["changed"], second["sent"]) == (5, 3, 8)
    assert sorted(ended) == gone and sorted(moved) == changed
    assert all(ended[key]["properties"] == delivered[key] for key in gone)
    assert moved["u050"]["properties"] == {
        "plan": "enterprise",
        "seats": 1050,
        "renews_on": "2026-02-20T00:00:00+00:00",
    }
    assert not {m["messageId"] for m in sent} & {m["messageId"] for m in added}

    # And state forgot the keys whose removal was delivered
    assert len(_state_keys(warehouse, "trials")) == 95 and not set(gone) & set(_state_keys(warehouse, "trials"))

    # When it runs again with nothing changed, Then nothing is sent
    code, third = _run(project, capsys)
    assert code == 0 and third["sent"] == 0 and len(read_captured(capture.out_path)) == 108

    # When a member who left comes back exactly as before
    _execute(
        warehouse,
        "INSERT INTO members VALUES ('u010', 'pro', 10, TIMESTAMP '2026-01-11 00:00:00')",
    )
    code, fourth = _run(project, capsys)

    # Then it is a new 'Trial Started' event, under an id of its own (Segment would drop a reused one)
    [back] = _sent_since(capture, 108)
    assert code == 0 and fourth["new"] == 1
    first_entry = next(m for m in added if m["userId"] == "u010")
    assert (back["event"], back["properties"]) == ("Trial Started", first_entry["properties"])
    assert back["messageId"] != first_entry["messageId"]


def test_on_removal_clear_sends_one_identify_with_null_traits_per_removed_key(tmp_path, warehouse, capture, capsys):
    # Given a User sync that clears what it set when a key leaves, and a first run that delivered everyone
    project = _project(tmp_path, warehouse, capture, MEMBERS)
    assert _run(project, capsys)[1]["sent"] == 100

    # When 4 members leave
    _execute(warehouse, "DELETE FROM members WHERE user_id IN ('u001', 'u002', 'u060', 'u061')")
    code, run = _run(project, capsys)

    # Then one identify per removed key goes out, with every trait the sync sets as null
    cleared = _sent_since(capture, 100)
    assert code == 0 and (run["removed"], run["sent"]) == (4, 4)
    assert sorted(m["userId"] for m in cleared) == ["u001", "u002", "u060", "u061"]
    assert all(m["type"] == "identify" for m in cleared)
    assert all(m["traits"] == {"plan": None, "seats": None, "source": None} for m in cleared)

    # And those keys are forgotten: the next run sends nothing, and a key that comes back is new again
    assert "u060" not in _state_keys(warehouse, "members")
    assert _run(project, capsys)[1]["sent"] == 0
    _execute(warehouse, "INSERT INTO members VALUES ('u060', 'pro', 60, TIMESTAMP '2026-03-02 00:00:00')")
    code, back = _run(project, capsys)
    [again] = _sent_since(capture, 104)
    assert back["new"] == 1 and again["traits"] == {"plan": "pro", "seats": 60, "source": "warehouse"}


def test_a_failing_or_emptied_model_sends_no_removals_and_the_run_fails_with_the_reason(
    tmp_path, warehouse, capture, capsys
):
    # Given a delivered changes sync
    project = _project(tmp_path, warehouse, capture, TRIALS)
    assert _run(project, capsys)[1]["sent"] == 100

    # When the model fails (its table is gone for a while), Then the run fails, sending and forgetting nothing
    _execute(warehouse, "ALTER TABLE members RENAME TO members_reloading")
    code, run = _run(project, capsys)
    assert code == 1 and run["status"] == "failed" and run["sent"] == 0 and "members" in run["error"]
    assert len(read_captured(capture.out_path)) == 100 and len(_state_keys(warehouse, "trials")) == 100
    _execute(warehouse, "ALTER TABLE members_reloading RENAME TO members")

    # When the table is emptied (a failed load, an outage upstream) and the sync runs
    _execute(warehouse, "DELETE FROM members")
    code, run = _run(project, capsys)

    # Then nothing is sent, state is untouched, and the run failed saying why and how to go on
    assert code == 1 and run["status"] == "failed" and run["sent"] == 0
    assert "the model returned no rows, so all 100 keys delivered before would be removed" in run["error"]
    assert "--allow-mass-removal" in run["error"]
    assert len(read_captured(capture.out_path)) == 100 and len(_state_keys(warehouse, "trials")) == 100

    # When it really is empty now, and the run is told so
    code, allowed = _run(project, capsys, "--allow-mass-removal")

    # Then every member's removal is sent, and state is empty
    assert code == 0 and allowed["sent"] == 100
    assert {m["event"] for m in _sent_since(capture, 100)} == {"Trial Ended"}
    assert _state_keys(warehouse, "trials") == []


def test_removing_more_than_max_removed_share_fails_the_run(tmp_path, warehouse, capture, capsys):
    # Given a delivered clearing User sync that allows a fifth of its keys to leave at once
    project = _project(tmp_path, warehouse, capture, {**MEMBERS, "max_removed_share": 0.2})
    assert _run(project, capsys)[1]["sent"] == 100

    # When 21 of its 100 members leave at once
    _execute(warehouse, "DELETE FROM members WHERE seats <= 21")
    code, run = _run(project, capsys)

    # Then the run fails before sending anything, naming the counts and the way on
    assert code == 1 and run["status"] == "failed" and run["sent"] == 0
    assert (
        "21 of the 100 keys delivered before are no longer in the model (21%, over max_removed_share 0.2)"
        in run["error"]
    )

    # And when one of them is back as it was (the failed run forgot no one), 20 leaving is within the share
    _execute(warehouse, "INSERT INTO members VALUES ('u001', 'trial', 1, TIMESTAMP '2026-01-02 00:00:00')")
    code, run = _run(project, capsys)
    assert code == 0 and (run["removed"], run["unchanged"], run["sent"]) == (20, 80, 20)


def test_a_baseline_sends_nothing_and_the_next_run_sends_only_what_changed_since(tmp_path, warehouse, capture, capsys):
    # Given a changes sync and a User sync another tool already delivered
    project = _project(tmp_path, warehouse, capture, TRIALS, {**MEMBERS, "on_removal": "ignore"})

    # When each is run once with --mark-synced
    for name in ("trials", "members"):
        code, baseline = _run(project, capsys, "--sync", name, "--mark-synced")

        # Then nothing is sent, every row is recorded as delivered, and the run committed as a baseline
        assert code == 0 and (baseline["status"], baseline["sent"], baseline["committed"]) == ("committed", 0, 100)
        assert baseline["baseline"] is True
    assert read_captured(capture.out_path) == []

    # And `segsync runs` shows it as one
    assert main(["runs", str(project), "--sync", "members"]) == 0
    listed = capsys.readouterr().out
    assert "committed (baseline)" in listed and "baseline (--mark-synced)" in listed

    # When two members change and one leaves, and both syncs run
    _execute(
        warehouse,
        "UPDATE members SET plan = 'enterprise' WHERE user_id IN ('u011', 'u012')",
        "DELETE FROM members WHERE user_id = 'u013'",
    )
    assert main(["run", "--local", str(project), "--json", "--tick-seconds", "0.2"]) == 0
    runs = {r["sync"]: r for r in orjson.loads(capsys.readouterr().out)["runs"]}

    # Then only what changed since the baseline goes out
    sent = read_captured(capture.out_path)
    assert (runs["trials"]["sent"], runs["members"]["sent"]) == (3, 2)
    assert sorted((m["type"], m.get("event"), m["userId"]) for m in sent) == [
        ("identify", None, "u011"),
        ("identify", None, "u012"),
        ("track", "Trial Changed", "u011"),
        ("track", "Trial Changed", "u012"),
        ("track", "Trial Ended", "u013"),
    ]


def test_mark_synced_names_its_syncs(tmp_path, warehouse, capture, capsys):
    # Given a project, When a baseline is asked for without naming a sync, Then it refuses in one line
    project = _project(tmp_path, warehouse, capture, TRIALS)
    assert main(["run", "--local", str(project), "--mark-synced"]) == 2
    assert "--mark-synced records rows as delivered without sending them: name the syncs with --sync" in (
        capsys.readouterr().err
    )

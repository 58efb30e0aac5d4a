"""Row and message identity as a user meets it: a DECIMAL key is "7" everywhere, and A → B → A is three messages."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest
import yaml

from segsync.cli import main
from segsync.local.capture import CaptureServer, read_captured


@pytest.fixture
def decimal_project(tmp_path: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ten users keyed by DECIMAL(18,0); user 7's bio is over Segment's 32 KB message limit."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "test-write-key")
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "CREATE TABLE users AS SELECT CAST(i AS DECIMAL(18, 0)) AS id, 'free' AS plan, "
            "CASE WHEN i = 7 THEN repeat('x', 40000) ELSE 'hi' END AS bio FROM range(1, 11) AS t(i)"
        )
    project = {
        "connections": {
            "warehouse": {"type": "duckdb", "path": str(warehouse)},
            "segment": {"type": "segment", "endpoint": capture.url, "write_key": {"env": "SEGMENT_WRITE_KEY"},
                        "events_per_second": 1_000_000},
        },
        "syncs": [
            {"name": "users", "object": "user", "source": "warehouse", "destination": "segment",
             "model": "SELECT * FROM users", "key": "id", "traits": {"plan": "plan", "bio": "bio"}}
        ],
    }  # fmt: skip
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def _run(project: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(["run", "--local", str(project), "--json"])
    report = orjson.loads(capsys.readouterr().out)
    assert code in (0, 1), report
    return report["runs"][0]


def test_a_decimal_key_is_one_text_from_the_wire_to_the_rejected_records(decimal_project, capture, capsys):
    # When the sync runs
    first = _run(decimal_project, capsys)

    # Then user 7 is rejected (too big for Segment) and the other nine are committed, as "1", not "1.0"
    assert (first["status"], first["sent"], first["rejected"], first["committed"]) == ("committed", 9, 1, 9)
    user_ids = sorted(m["userId"] for m in read_captured(capture.out_path))
    assert user_ids == sorted(str(i) for i in range(1, 11) if i != 7)

    # And its rejected record names the key as 7
    assert main(["rejected", str(decimal_project), "--sync", "users", "--run", first["run_id"], "--json"]) == 0
    [record] = orjson.loads(capsys.readouterr().out)["rejected"]
    assert (record["row_key"], record["field"]) == ("7", "message")

    # When the sync runs again, Then it tries user 7 again (and only user 7)
    again = _run(decimal_project, capsys)
    assert (again["new"], again["changed"], again["rejected"], again["sent"]) == (1, 0, 1, 0)


def test_a_plan_that_changes_and_changes_back_arrives_as_three_messages(decimal_project, capture, capsys):
    # Given user 1 on plan free, delivered
    _run(decimal_project, capsys)
    path = yaml.safe_load(decimal_project.read_text())["connections"]["warehouse"]["path"]

    # When its plan goes to pro, then back to free, one run each
    for plan in ("pro", "free"):
        with duckdb.connect(path) as con:
            con.execute("UPDATE users SET plan = ? WHERE id = 1", [plan])
        run = _run(decimal_project, capsys)
        assert (run["changed"], run["sent"]) == (1, 1)

    # Then user 1 arrived three times, each under its own messageId (Segment keeps all three)
    mine = [m for m in read_captured(capture.out_path) if m["userId"] == "1"]
    assert [m["traits"]["plan"] for m in mine] == ["free", "pro", "free"]
    assert len({m["messageId"] for m in mine}) == 3

"""A sync that names a dbt model, end to end: manifest → relation → the local pipeline → the capture endpoint."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest
import yaml

from segsync.cli import main
from segsync.local.capture import CaptureServer, read_captured

from ..dbt_warehouse import MANIFEST, build_dbt_warehouse

RELATION = '"warehouse"."main"."dim_users"'


@pytest.fixture
def dbt_project_file(tmp_path: Path, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project reading two dbt models from the warehouse dbt built, its destination the capture endpoint."""
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "e2e-write-key")
    build_dbt_warehouse(tmp_path)
    project = {
        "version": 1,
        "dbt": {"manifest": str(MANIFEST)},
        "connections": {
            "warehouse": {"type": "duckdb", "path": "warehouse.duckdb"},
            "segment": {
                "type": "segment",
                "endpoint": capture.url,
                "events_per_second": 1_000_000,
                "write_key": {"env": "SEGMENT_WRITE_KEY"},
            },
        },
        "syncs": [
            {
                "name": "dbt-users",
                "object": "user",
                "source": "warehouse",
                "destination": "segment",
                "model": {"dbt": "dim_users"},
                "key": "user_id",
                "traits": {"email": "email", "plan": "plan", "paying": "is_paying"},
            },
            {
                "name": "dbt-signups",
                "object": "track",
                "source": "warehouse",
                "destination": "segment",
                "model": {"dbt": "fct_signups"},
                "key": "event_id",
                "event": "event_name",
                "user_id": "user_id",
                "timestamp": "occurred_at",
            },
        ],
    }
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def test_validate_shows_the_relation_each_dbt_model_resolves_to(dbt_project_file, capsys):
    # When the project is validated, for people and for machines
    assert main(["validate", str(dbt_project_file)]) == 0
    text = capsys.readouterr().out
    assert main(["validate", str(dbt_project_file), "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)

    # Then both say which relation each dbt model reads
    assert f"  sync 'dbt-users': dbt model dim_users → {RELATION}" in text
    assert '  sync \'dbt-signups\': dbt model fct_signups → "warehouse"."main"."fct_signups"' in text
    assert data["dbt_models"]["dbt-users"] == {"model": "dim_users", "relation": RELATION}


def test_a_sync_naming_a_dbt_model_sends_the_rows_dbt_built(dbt_project_file, capture, tmp_path, capsys):
    # Given the rows dbt built in dim_users
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(f"SELECT user_id, email, plan, is_paying FROM {RELATION}").fetchall()
    expected = {row[0]: row[1:] for row in rows}

    # When both syncs run locally
    code = main(["run", "--local", str(dbt_project_file), "--json"])

    # Then every row of both dbt models arrived once, with the traits dbt computed
    summary = orjson.loads(capsys.readouterr().out)
    assert code == 0 and summary["ok"] is True
    assert [(r["sync"], r["status"], r["sent"]) for r in summary["runs"]] == [
        ("dbt-users", "committed", 40),
        ("dbt-signups", "committed", 40),
    ]
    messages = read_captured(capture.out_path)
    identifies = {m["userId"]: m["traits"] for m in messages if m["type"] == "identify"}
    assert len(expected) == 40
    assert {user: (t["email"], t["plan"], t["paying"]) for user, t in identifies.items()} == expected
    assert {m["event"] for m in messages if m["type"] == "track"} == {"Signed Up"}
    assert len({m["messageId"] for m in messages}) == 80

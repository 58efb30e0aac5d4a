"""Previewing a sync that sends changes: how many messages of each kind the next run sends, the first payloads of
each, rows only recorded, and a run the mass-removal guard would refuse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml

from segsync.cli import main
from segsync.commands.preview import preview_next_run, preview_sync
from segsync.config import DuckDBConnection, load_project
from segsync.state import WarehouseState, destination_id
from segsync.warehouse.duckdb import DuckDBWarehouse

TRIALS = {
    "name": "trials", "object": "track", "behavior": "changes", "source": "warehouse", "destination": "segment",
    "model": "SELECT * FROM members", "key": "user_id", "user_id": "user_id",
    "events": {"added": "Trial Started", "changed": "Trial Changed", "removed": "Trial Ended"},
    "properties": {"plan": "plan"},
}  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Ten members, and the changes sync in three shapes: every event, only removals, and a clearing User sync."""
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "CREATE TABLE members AS SELECT 'u' || CAST(i AS VARCHAR) AS user_id, "
            "CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'free' END AS plan FROM range(10) AS t(i)"
        )
    syncs = [
        TRIALS,
        {**TRIALS, "name": "exits", "events": {"removed": "Trial Ended"}},
        {"name": "members", "object": "user", "source": "warehouse", "destination": "segment",
         "model": "SELECT * FROM members", "key": "user_id", "on_removal": "clear", "traits": {"plan": "plan"}},
    ]  # fmt: skip
    data = {
        "connections": {
            "warehouse": {"type": "duckdb", "path": str(warehouse)},
            "segment": {"type": "segment", "write_key": {"env": "SEGMENT_WRITE_KEY"}},
        },
        "syncs": syncs,
    }
    path = tmp_path / "segsync.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _delivered(project: Path) -> tuple[Any, str]:
    """Every sync's rows delivered (state as committed runs leave it), then 2 members gone and 1 changed."""
    loaded = load_project(project)
    destination = destination_id(loaded.connections["segment"])
    with DuckDBWarehouse(DuckDBConnection.model_validate(loaded.connections["warehouse"].model_dump())) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        state.ensure()
        for sync in loaded.syncs:
            state.fence(sync.name, "run-1")
            state.prepare(sync, "run-1", destination, state.model_columns(sync.sql), full_resync=False)
            state.settle(sync, "run-1", destination, ("new",))
            state.drop_run(sync.name, "run-1")
        warehouse.execute("DELETE FROM members WHERE user_id IN ('u1', 'u2')")
        warehouse.execute("UPDATE members SET plan = 'enterprise' WHERE user_id = 'u3'")
    return loaded, destination


def test_the_next_run_counts_and_shows_each_kind_of_change(project):
    # Given a delivered changes sync, 2 members gone and 1 changed since
    loaded, destination = _delivered(project)

    # When the next run is previewed
    with DuckDBWarehouse(loaded.connections["warehouse"]) as warehouse:
        result = preview_next_run(loaded.sync("trials"), WarehouseState(warehouse, "SEGSYNC"), destination, limit=1)

    # Then it counts the messages of each kind, shows the first of each, and removals carry the last values
    out = result.as_dict()
    assert (out["rows"], out["new"], out["changed"], out["unchanged"], out["removed"]) == (8, 0, 1, 7, 2)
    assert out["sends"] == {"changed": 1, "removed": 2} and out["warning"] is None
    shown = {p.change: p.message for p in result.payloads}
    assert sorted(shown) == ["changed", "removed"]
    assert (shown["changed"]["event"], shown["changed"]["properties"]) == ("Trial Changed", {"plan": "enterprise"})
    assert shown["removed"]["event"] == "Trial Ended"
    assert shown["removed"]["properties"] == {"plan": {"u1": "free", "u2": "pro"}[shown["removed"]["userId"]]}


def test_the_preview_says_which_kinds_are_sent_which_recorded_and_a_refused_run(project, capsys, monkeypatch):
    # Given delivered syncs, 2 members gone and 1 changed since
    _delivered(project)

    # When a sync that sends only removals is previewed, Then its changed row is recorded, not sent
    assert main(["preview", str(project), "--sync", "exits", "--limit", "1"]) == 0
    text = capsys.readouterr().out
    assert "\nchanged    1  recorded as delivered, not sent (no 'changed' event is named)\n" in text
    assert "\nremoved    2  to send (track 'Trial Ended')\n" in text
    assert "first 1 of 2 removed messages" in text and "first 1 of 1 changed" not in text

    # When the clearing User sync is previewed for one removed key, Then its clearing identify is shown
    assert main(["preview", str(project), "--sync", "members", "--key", "u2", "--json"]) == 0
    [cleared] = orjson.loads(capsys.readouterr().out)["payloads"]
    assert (cleared["userId"], cleared["traits"]) == ("u2", {"plan": None})

    # When the table is emptied, Then the preview says the next run would be refused, and why
    with duckdb.connect(str(load_project(project).connections["warehouse"].path)) as con:
        con.execute("DELETE FROM members")
    assert main(["preview", str(project), "--sync", "trials", "--json"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["warning"].startswith("the next run would fail: the model returned no rows, so all 10 keys")
    assert out["sends"] == {"removed": 10}


def test_the_whole_model_of_a_changes_sync_is_every_row_added(project):
    loaded = load_project(project)
    with DuckDBWarehouse(loaded.connections["warehouse"]) as warehouse:
        result = preview_sync(loaded.sync("trials"), WarehouseState(warehouse, "SEGSYNC"), limit=2)
    assert result.rows == 10 and {p.message["event"] for p in result.payloads} == {"Trial Started"}

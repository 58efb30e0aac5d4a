"""The segsync command as a user meets it: clear one-line errors, machine-readable output, ports, previews."""

from __future__ import annotations

import socket
from pathlib import Path

import duckdb
import orjson
import pytest
import yaml

from segsync.cli import main
from segsync.local.capture import read_captured

from ..conftest import point_at


def _edit(project_file: Path, change) -> Path:
    data = yaml.safe_load(project_file.read_text())
    change(data)
    project_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return project_file


def test_validate_accepts_the_demo_project(project_file, capsys):
    # When a valid project file is validated with --json
    code = main(["validate", str(project_file), "--json"])

    # Then it exits 0 and lists the syncs
    assert code == 0
    assert orjson.loads(capsys.readouterr().out)["syncs"] == ["demo-users", "demo-events"]


def test_a_misspelled_field_names_the_sync_and_the_field_without_a_traceback(project_file, capsys):
    # Given demo-users says "trait" where it means "traits"
    _edit(project_file, lambda d: d["syncs"][0].update(trait=d["syncs"][0].pop("traits")))

    # When the file is validated
    code = main(["validate", str(project_file)])

    # Then one clear line names the sync and the field, exit code 2
    err = capsys.readouterr().err
    assert code == 2
    assert "sync 'demo-users' field 'trait'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_missing_write_key_says_so_before_anything_runs(project_file, capsys, monkeypatch):
    # Given SEGMENT_WRITE_KEY is not set
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)

    # When one sync runs locally with --json
    code = main(["run", "--local", str(project_file), "--sync", "demo-users", "--json"])

    # Then it stops at once with a message naming the connection and the variable
    out = orjson.loads(capsys.readouterr().out)
    assert code == 2 and out["ok"] is False
    assert out["error"] == (
        "connection 'segment': Segment write key: environment variable SEGMENT_WRITE_KEY is not set"
    )


def test_an_unknown_sync_name_is_a_usage_error(project_file, capsys):
    # When a sync that does not exist is asked for
    code = main(["run", "--local", str(project_file), "--sync", "nope"])

    # Then the error lists the syncs that do exist
    assert code == 2
    assert "no sync named 'nope' (have: demo-users, demo-events)" in capsys.readouterr().err


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports nobody listens on (all held open together, so none is handed out twice)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def test_the_demo_keeps_its_state_on_another_port_and_preview_shows_what_the_next_run_sends(
    project_file, tmp_path, capsys
):
    # Given the demo (its warehouse at this test's size, in tmp_path) run once on one capture port
    first_port, second_port, third_port = _free_ports(3)
    demo = ["demo", "--dir", str(tmp_path), "--json"]
    assert main([*demo, "--capture-port", str(first_port)]) == 0
    assert orjson.loads(capsys.readouterr().out)["received"] == 2_300

    # When it runs again on another port
    assert main([*demo, "--capture-port", str(second_port)]) == 0

    # Then nothing new is sent: the capture endpoint's state does not depend on its port
    again = orjson.loads(capsys.readouterr().out)
    assert again["received"] == 0
    assert [(r["sync"], r["new"], r["changed"], r["unchanged"]) for r in again["runs"]] == [
        ("demo-users", 0, 0, 300),
        ("demo-events", 0, 0, 2_000),
    ]

    # Given one user changed
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("UPDATE users SET plan = 'gold' WHERE user_id = 'user_000001'")

    # When the next run is previewed against what the capture endpoint received
    assert main(["preview", str(project_file), "--sync", "demo-users", "--capture", "--json"]) == 0

    # Then one changed row would go out, and its payload is shown
    preview = orjson.loads(capsys.readouterr().out)
    counts = tuple(preview[name] for name in ("new", "changed", "unchanged", "removed", "rejected"))
    assert counts == (0, 1, 299, 0, 0)
    (payload,) = preview["payloads"]
    assert payload["userId"] == "user_000001" and payload["traits"]["plan"] == "gold"

    # When the demo runs once more, on a third port, Then it sends exactly the message previewed
    assert main([*demo, "--capture-port", str(third_port)]) == 0
    assert orjson.loads(capsys.readouterr().out)["received"] == 1
    (sent,) = read_captured(tmp_path / "out" / "captured.ndjson")
    assert {k: v for k, v in sent.items() if k not in ("sentAt", "receivedAt")} == payload


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--dir", "DIR"],
        ["run", "--local", "PROJECT", "--sync", "demo-users", "--faults", "seq=ok"],
    ],
)
def test_a_busy_capture_port_is_one_line_that_names_the_port_and_capture_port(argv, project_file, tmp_path, capsys):
    # Given another program listening on the capture port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When the demo or a rehearsal is asked to use it
        argv = [str(tmp_path) if a == "DIR" else str(project_file) if a == "PROJECT" else a for a in argv]
        code = main([*argv, "--capture-port", str(port)])

    # Then one line says so, names the port and the option that changes it, and exits 2
    err = capsys.readouterr().err
    assert code == 2
    assert err.endswith(
        f"segsync: error: capture endpoint cannot listen on 127.0.0.1:{port}: Address already in use; "
        "choose another port with --capture-port\n"
    )
    assert len(err.strip().splitlines()) == 1


def test_verbose_prints_the_functions_logs_on_stderr_and_stdout_stays_json(project_file, capture, capsys, monkeypatch):
    # Given the demo project pointed at a capture endpoint
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "e2e-write-key")
    point_at(project_file, capture.url)

    # When one sync runs with --verbose and --json
    code = main(["run", "--local", str(project_file), "--sync", "demo-users", "--json", "-v"])

    # Then stdout is the summary alone, and the planner's and sender's JSON logs are on stderr
    out, err = capsys.readouterr()
    summary = orjson.loads(out)
    assert code == 0 and summary["ok"] is True and "logs" not in summary
    logged = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"run planned", "chunk delivered", "run committed"} <= {line["message"] for line in logged}
    assert not (project_file.parent / ".segsync").exists()

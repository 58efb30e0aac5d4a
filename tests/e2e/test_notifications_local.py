"""Notifications from `segsync run --local`: a failing model and a run over the rejected threshold each post once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from segsync.cli import main
from segsync.local.capture import CaptureServer

from ..conftest import point_at
from ..http_fakes import serve, slack_ok


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch):
    """A Slack-compatible webhook on loopback; its URL in SLACK_WEBHOOK_URL, as the project names it."""
    with serve(slack_ok) as service:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", service.url + "/services/T0/B0/e2e")
        yield service


NOTIFICATIONS = """\
notifications:
  - webhook: {env: SLACK_WEBHOOK_URL}
    on: [failed, rejected]
    rejected: {share: 0.05}
"""
"""As people write it: an unquoted `on:` key."""


def _with_notifications(project_file: Path, capture: CaptureServer, change) -> Path:
    """The project pointed at the capture endpoint, demo-users changed by ``change``, notifying the webhook."""
    point_at(project_file, capture.url, demo_users=change)
    project_file.write_text(project_file.read_text() + NOTIFICATIONS)
    return project_file


def test_a_run_whose_model_sql_fails_posts_one_notification_naming_the_sync_and_the_error(
    project_file, capture, webhook, monkeypatch, capsys
):
    # Given demo-users' model reads a table that does not exist
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "e2e-write-key")
    path = _with_notifications(project_file, capture, lambda s: s.update(model="SELECT * FROM no_such_table"))

    # When both demo syncs run locally
    code = main(["run", "--local", str(path), "--json"])

    # Then the run failed, and exactly one message reached the webhook, naming the sync, the error, and the
    # command to see more with this very project file
    summary = orjson.loads(capsys.readouterr().out)
    assert code == 1 and [r["status"] for r in summary["runs"]] == ["failed", "committed"]
    [posted] = webhook.received
    text = posted.json()["text"]
    assert text.startswith("segsync: sync 'demo-users' run ")
    assert "failed\nerror: sync 'demo-users': model query failed:" in text and "no_such_table" in text
    assert f"see more: segsync runs {path} --sync demo-users" in text


def test_a_committed_run_over_the_rejected_threshold_posts_one_notification(
    project_file, capture, webhook, monkeypatch, capsys
):
    # Given 20 of demo-users' 310 rows share a key with another row (6.5% rejected, over 5%)
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "e2e-write-key")
    duplicated = "SELECT * FROM users UNION ALL SELECT * FROM users WHERE user_id <= 'user_000010'"
    path = _with_notifications(project_file, capture, lambda s: s.update(model=duplicated))

    # When demo-users runs locally
    code = main(["run", "--local", str(path), "--sync", "demo-users", "--json"])

    # Then the run committed what it could, and one message gives the share and the first reason
    summary = orjson.loads(capsys.readouterr().out)
    [run] = summary["runs"]
    assert code == 0 and (run["status"], run["rejected"], run["sent"]) == ("committed", 20, 290)
    [posted] = webhook.received
    lines = posted.json()["text"].splitlines()
    assert lines[0] == (
        f"segsync: sync 'demo-users' run {run['run_id']} committed with 20 of 310 rows rejected (6.5%, over 5.0%)"
    )
    assert lines[2] == "first reasons: key: duplicate key: N rows share it (20)"
    assert lines[3] == f"see more: segsync rejected {path} --sync demo-users --run {run['run_id']}"


def test_a_clean_committed_run_posts_nothing(project_file, capture, webhook, monkeypatch):
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "e2e-write-key")
    path = _with_notifications(project_file, capture, lambda s: None)
    assert main(["run", "--local", str(path), "--sync", "demo-users"]) == 0
    assert webhook.received == []

"""Project files that name dbt models and notifications: they load resolved, and mistakes name the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from segsync.config import DbtModel, Notification, RejectedThreshold, load_project, parse_notifications, parse_sync
from segsync.errors import ConfigError

from ..dbt_warehouse import MANIFEST

PROJECT = """\
version: 1
dbt: {manifest: dbt/target/manifest.json}
connections:
  warehouse: {type: duckdb, path: warehouse.duckdb}
  segment: {type: segment, write_key: {env: SEGMENT_WRITE_KEY}}
syncs:
  - name: users
    object: user
    source: warehouse
    destination: segment
    model: {dbt: dim_users}
    key: user_id
    traits: {email: email}
  - name: raw
    object: user
    source: warehouse
    destination: segment
    model: SELECT * FROM users
    key: user_id
notifications:
  - webhook: {env: SLACK_WEBHOOK_URL}
    on: [failed, rejected]
    rejected: {share: 0.01}
  - email: data-team@example.com
    on: [stale]
    stale: {hours: 6}
    syncs: [users]
"""


def _project(tmp_path: Path, text: str = PROJECT) -> Path:
    (tmp_path / "dbt" / "target").mkdir(parents=True)
    shutil.copy(MANIFEST, tmp_path / "dbt" / "target" / "manifest.json")
    path = tmp_path / "segsync.yml"
    path.write_text(text)
    return path


def test_a_dbt_model_resolves_through_the_manifest_named_relative_to_the_file(tmp_path, monkeypatch):
    # Given a project whose manifest path is relative to the file, read from another directory
    path = _project(tmp_path)
    monkeypatch.chdir("/")

    # When it is loaded
    project = load_project(path)

    # Then the dbt model carries the relation dbt built, its SQL reads that relation, SQL models are untouched
    users, raw = project.syncs
    assert users.model == DbtModel(dbt="dim_users", relation='"warehouse"."main"."dim_users"')
    assert users.sql == 'SELECT * FROM "warehouse"."main"."dim_users"'
    assert users.dbt_model == "dim_users"
    assert (raw.sql, raw.dbt_model) == ("SELECT * FROM users", None)
    assert project.dbt.manifest == str(tmp_path / "dbt" / "target" / "manifest.json")


def test_a_dbt_model_without_a_manifest_says_what_to_add(tmp_path):
    path = _project(tmp_path, PROJECT.replace("dbt: {manifest: dbt/target/manifest.json}\n", ""))
    with pytest.raises(ConfigError) as error:
        load_project(path)
    assert str(error.value) == (
        f"{path}: sync 'users' names dbt model 'dim_users', but the project has no dbt manifest: "
        "add dbt: {manifest: path/to/target/manifest.json}"
    )


def test_a_relation_written_in_the_file_is_refused(tmp_path):
    path = _project(tmp_path, PROJECT.replace("{dbt: dim_users}", "{dbt: dim_users, relation: main.users}"))
    with pytest.raises(ConfigError, match=r"sync 'users' field 'model.relation': segsync fills it in"):
        load_project(path)


def test_an_unknown_dbt_model_fails_the_file_naming_the_sync(tmp_path):
    path = _project(tmp_path, PROJECT.replace("{dbt: dim_users}", "{dbt: int_user_flags}"))
    with pytest.raises(ConfigError, match=r"sync 'users': dbt model 'int_user_flags' is ephemeral"):
        load_project(path)


def test_a_model_that_is_neither_sql_nor_a_dbt_reference_names_both_forms():
    with pytest.raises(ConfigError) as error:
        parse_sync({"name": "u", "object": "user", "source": "w", "destination": "s", "key": "id", "model": 42})
    assert str(error.value) == "sync 'u': field 'model': give SQL text or {dbt: MODEL_NAME}"


def test_a_sync_item_holding_an_unresolved_dbt_model_fails_its_run_with_what_to_do():
    # Given an item written by hand in the console: the dbt model without its relation
    sync = parse_sync(
        {"name": "u", "object": "user", "source": "w", "destination": "s", "key": "id", "model": {"dbt": "dim_users"}}
    )

    # When / Then its SQL cannot be known, and the error says how the relation gets there
    with pytest.raises(ConfigError, match=r"dbt model 'dim_users' has no relation: push the project file"):
        _ = sync.sql


def test_notifications_load_with_yaml_on_as_a_key_and_their_thresholds(tmp_path):
    # When the project (with an unquoted `on:` key, a boolean in YAML 1.1) is loaded
    project = load_project(_project(tmp_path))

    # Then both notifications are there with their events and thresholds
    slack, email = project.notifications
    assert slack.on == ["failed", "rejected"] and slack.rejected == RejectedThreshold(share=0.01)
    assert slack.destination == "webhook (env SLACK_WEBHOOK_URL)"
    assert email.stale.hours == 6 and email.wants("stale", "users") and not email.wants("stale", "raw")
    assert not slack.wants("committed", "users")


@pytest.mark.parametrize(
    ("notification", "message"),
    [
        ({"on": ["failed"]}, "give exactly one destination: webhook, sns or email"),
        ({"email": "a@b.io", "sns": "arn:aws:sns:us-east-1:123456789012:t", "on": ["failed"]}, "exactly one"),
        ({"email": "a@b.io", "on": []}, "field 'on': List should have at least 1 item"),
        ({"email": "a@b.io", "on": ["failure"]}, "field 'on.0': Input should be 'failed', 'abandoned'"),
        ({"email": "a@b.io", "on": ["failed"], "rejected": {"share": 0.1}}, "'rejected' is not in 'on'"),
        ({"email": "a@b.io", "on": ["rejected"], "rejected": {}}, "give 'share'"),
        ({"sns": "my-topic", "on": ["failed"]}, "field 'sns': String should match pattern"),
        ({"webhook": {"url": "https://hooks.example.com/x"}, "on": ["failed"]}, "field 'webhook.url': Extra inputs"),
    ],
)
def test_a_bad_notification_names_its_number_and_field(notification, message):
    with pytest.raises(ConfigError) as error:
        parse_notifications([{"email": "ok@example.com", "on": ["failed"]}, notification])
    assert str(error.value).startswith("project notifications: notification #2 field")
    assert message in str(error.value)


def test_a_notification_for_an_unknown_sync_is_refused(tmp_path):
    path = _project(tmp_path, PROJECT.replace("syncs: [users]", "syncs: [userz]"))
    with pytest.raises(ConfigError, match=r"notification #2: no sync named 'userz'"):
        load_project(path)


def test_the_rejected_threshold_is_strictly_over_a_share_or_a_count():
    by_share, by_count = RejectedThreshold(share=0.05), RejectedThreshold(count=10)
    assert not by_share.exceeded(5, 100) and by_share.exceeded(6, 100)
    assert not by_count.exceeded(10, 20) and by_count.exceeded(11, 1_000_000)
    assert not by_share.exceeded(0, 0)
    assert Notification(webhook={"env": "X"}, on=["rejected"]).rejected == RejectedThreshold(share=0.05)

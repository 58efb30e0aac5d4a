"""What ``segsync push`` would change in the syncs table: the project file's items against the table's."""

from __future__ import annotations

import copy

from segsync.config import Project
from segsync.deployed import Change, plan_push, project_items

PROJECT = {
    "version": 1,
    "connections": {
        "warehouse": {
            "type": "snowflake",
            "account": "xy12345.eu-west-1",
            "user": "SEGSYNC",
            "credentials": {"secret": "segsync/warehouse/snowflake"},
        },
        "segment": {"type": "segment", "write_key": {"secret": "segsync/segment/prod"}},
    },
    "syncs": [
        {
            "name": "users",
            "object": "user",
            "source": "warehouse",
            "destination": "segment",
            "model": "SELECT * FROM users",
            "key": "user_id",
            "traits": {"email": "email", "score": {"value": 0.5}},
            "schedule": "rate(1 hour)",
        }
    ],
}


def items(data: dict | None = None) -> dict:
    return project_items(Project.model_validate(data or PROJECT))


def test_items_are_what_the_table_holds_and_name_secrets_only():
    # When the project becomes items
    result = items()

    # Then each is keyed (kind, name), floats survive the trip through Decimal, secrets are references, and
    # the project's notifications are one item (empty here: removing them from the file removes them)
    assert set(result) == {
        ("connection", "warehouse"),
        ("connection", "segment"),
        ("sync", "users"),
        ("project", "notifications"),
    }
    assert result[("project", "notifications")]["notifications"] == []
    assert result[("sync", "users")]["traits"]["score"] == {"value": 0.5}
    assert result[("connection", "segment")]["write_key"] == {"secret": "segsync/segment/prod"}
    assert result[("connection", "warehouse")]["name"] == "warehouse"


def test_an_empty_table_gets_everything_added_connections_first():
    # When the file is compared with an empty table
    plan = plan_push(items(), {})

    # Then every item is added, connections before syncs before the project's notifications, and that is all
    assert plan.added == [
        ("connection", "segment"),
        ("connection", "warehouse"),
        ("sync", "users"),
        ("project", "notifications"),
    ]
    assert (plan.changed, plan.removed, plan.unchanged, plan.writes) == ([], [], 0, 4)


def test_the_same_items_change_nothing():
    assert plan_push(items(), items()).writes == 0
    assert plan_push(items(), items()).unchanged == 4


def test_changed_items_name_the_fields_that_differ():
    # Given the table holds an older model and a console edit (disabled, an extra attribute)
    current = items()
    current[("sync", "users")] = {
        **current[("sync", "users")],
        "model": "SELECT 1",
        "enabled": False,
        "note": "paused by ops",
    }

    # When the file is compared with it
    plan = plan_push(items(), current)

    # Then the sync is changed in exactly those fields (the file wins: enabled comes back)
    assert plan.changed == [Change("sync", "users", ("enabled", "model", "note"))]
    assert plan.unchanged == 3


def test_items_only_in_the_table_are_reported_as_removed():
    # Given the table also holds a sync the file no longer has
    current = items()
    current[("sync", "legacy")] = {"kind": "sync", "name": "legacy"}
    data = copy.deepcopy(PROJECT)

    # When the file is compared with it
    plan = plan_push(items(data), current)

    # Then it is listed as removed (the command keeps it unless --prune), nothing else changes
    assert plan.removed == [("sync", "legacy")]
    assert plan.writes == 0


def test_a_dbt_model_is_stored_with_its_relation_so_a_new_relation_shows_as_a_change():
    # Given the table holds a sync whose dbt model resolved to one relation
    data = copy.deepcopy(PROJECT)
    data["syncs"][0]["model"] = {"dbt": "dim_users", "relation": '"analytics"."marts"."dim_users"'}
    current = items(data)

    # When the dbt project moves the model to another schema and the file is pushed again
    data["syncs"][0]["model"] = {"dbt": "dim_users", "relation": '"analytics"."core"."dim_users"'}
    plan = plan_push(items(data), current)

    # Then the item holds both the model's name and its relation, and the push shows the model changed
    assert current[("sync", "users")]["model"] == {"dbt": "dim_users", "relation": '"analytics"."marts"."dim_users"'}
    assert plan.changed == [Change("sync", "users", ("model",))]

"""``segsync schema``: the project file's JSON Schema, generated from the models, committed, used by editors."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest

from segsync.cli import main
from segsync.commands.schema import render
from segsync.config import read_yaml

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "segsync.schema.json"
DEMO = ROOT / "demo" / "segsync.yml"

FULL = """\
version: 1
dbt: {manifest: target/manifest.json}
connections:
  warehouse:
    type: snowflake
    account: xy12345.eu-west-1
    user: SEGSYNC
    schema: MARTS
    credentials: {secret: segsync/warehouse/snowflake}
  segment: {type: segment, region: eu, write_key: {secret: segsync/segment/prod}}
syncs:
  - name: users
    object: user
    source: warehouse
    destination: segment
    model: {dbt: dim_users}
    key: user_id
    traits: {plan: {column: plan, nulls: send}, source: {value: warehouse}}
    mappings: {context.ip: last_ip}
notifications:
  - webhook: {secret: segsync/notify/slack}
    on: [failed, abandoned, rejected]
    rejected: {share: 0.02, count: 500}
  - email: data-team@example.com
    on: [stale]
    stale: {hours: 12}
"""


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = orjson.loads(COMMITTED.read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_the_one_the_models_generate():
    # Given the schema file editors point at (demo/segsync.yml names it)
    # When / Then it is exactly what `segsync schema` prints today (`make schema` writes it anew)
    assert COMMITTED.read_text() == render(), "schema/segsync.schema.json is stale: run `make schema`"
    assert DEMO.read_text().startswith("# yaml-language-server: $schema=../schema/segsync.schema.json\n")


def test_segsync_schema_prints_it_or_writes_it(capsys, tmp_path):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == render()
    assert main(["schema", "--out", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").read_text() == render()


def test_the_schema_accepts_the_demo_project_and_a_project_using_every_kind_of_field(validator):
    assert list(validator.iter_errors(read_yaml(DEMO.read_text()))) == []
    assert list(validator.iter_errors(read_yaml(FULL))) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["syncs"][0].update(trait=d["syncs"][0].pop("traits")), "syncs/0"),
        (lambda d: d.update(conections=d.pop("connections")), ""),
        (lambda d: d["connections"]["segment"].update(writekey="x"), "connections/segment"),
        (lambda d: d["notifications"][0].update(when=["failed"]), "notifications/0"),
        (lambda d: d["syncs"][0]["model"].update(relation='"db"."main"."t"'), "syncs/0"),
        (lambda d: d["notifications"][0].update(on=["failure"]), "notifications/0/on/0"),
    ],
)
def test_the_schema_refuses_a_misspelled_or_unknown_field(validator, change, where):
    # Given the full project with one field misspelled (or one segsync fills in itself)
    data = read_yaml(FULL)
    change(data)

    # When it is validated against the schema
    errors = list(validator.iter_errors(data))

    # Then it is refused, at that place in the file
    assert errors
    assert "/".join(str(p) for p in jsonschema.exceptions.best_match(errors).absolute_path).startswith(where)


def test_field_descriptions_reach_the_schema_for_editors_to_show():
    schema = orjson.loads(COMMITTED.read_bytes())
    assert schema["title"] == "segsync project file"
    assert schema["properties"]["dbt"]["description"].startswith("the dbt manifest")
    assert "relation" not in schema["$defs"]["DbtModel"]["properties"]
    assert schema["$defs"]["Notification"]["properties"]["on"]["items"]["enum"] == [
        "failed",
        "abandoned",
        "rejected",
        "committed",
        "stale",
    ]

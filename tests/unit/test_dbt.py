"""dbt models by name: a real dbt manifest (dbt-core on DuckDB, `make dbt-fixture`) → the relation dbt built."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from segsync.dbt import Manifest, built_models
from segsync.errors import ConfigError

from ..dbt_warehouse import MANIFEST, RUN_RESULTS


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.load(MANIFEST)


def test_a_table_and_a_view_resolve_to_the_relations_dbt_built(manifest):
    # When the fixture's models are looked up by name (and by package.name)
    # Then each gives the relation dbt wrote in the manifest, quoted as dbt quotes it
    assert manifest.relation("dim_users", "users") == '"warehouse"."main"."dim_users"'
    assert manifest.relation("stg_users", "users") == '"warehouse"."main"."stg_users"'
    assert manifest.relation("segsync_fixture.fct_signups", "signups") == '"warehouse"."main"."fct_signups"'


def test_an_unknown_model_names_the_sync_the_manifest_and_the_closest_names(manifest):
    with pytest.raises(ConfigError) as error:
        manifest.relation("dim_user", "users")
    assert str(error.value) == (f"sync 'users': no dbt model 'dim_user' in {MANIFEST} (did you mean 'dim_users'?)")


def test_a_disabled_model_says_it_is_disabled(manifest):
    with pytest.raises(ConfigError) as error:
        manifest.relation("legacy_users", "legacy")
    assert str(error.value).startswith(
        "sync 'legacy': dbt model 'legacy_users' is disabled in the dbt project (enabled: false)"
    )


def test_an_ephemeral_model_has_no_relation_to_read(manifest):
    with pytest.raises(ConfigError) as error:
        manifest.relation("int_user_flags", "flags")
    assert str(error.value) == (
        "sync 'flags': dbt model 'int_user_flags' is ephemeral: dbt inlines it into other models and builds no "
        "relation to read; materialize it as a view or a table"
    )


def test_a_model_without_a_relation_yet_names_the_dbt_command_that_writes_it(tmp_path: Path):
    # Given the fixture's manifest as a dbt that has not compiled dim_users would leave it
    data = orjson.loads(MANIFEST.read_bytes())
    data["nodes"]["model.segsync_fixture.dim_users"]["relation_name"] = None
    path = tmp_path / "manifest.json"
    path.write_bytes(orjson.dumps(data))

    # When it is resolved
    with pytest.raises(ConfigError) as error:
        Manifest.load(path).relation("dim_users", "users")

    # Then the error says which command writes it
    assert str(error.value) == (
        f"sync 'users': dbt model 'dim_users' has no relation in {path} yet: run "
        "`dbt compile --select dim_users` (or dbt run) to write it, then try again"
    )


def test_the_same_name_in_two_packages_must_be_qualified(tmp_path: Path):
    # Given a package that also has a dim_users
    data = orjson.loads(MANIFEST.read_bytes())
    other = {**data["nodes"]["model.segsync_fixture.dim_users"], "package_name": "crm"}
    other["unique_id"] = "model.crm.dim_users"
    data["nodes"]["model.crm.dim_users"] = other
    path = tmp_path / "manifest.json"
    path.write_bytes(orjson.dumps(data))
    manifest = Manifest.load(path)

    # When / Then the bare name is ambiguous, package.name is not
    with pytest.raises(ConfigError, match=r"ambiguous \(model.crm.dim_users, model.segsync_fixture.dim_users\)"):
        manifest.relation("dim_users", "users")
    assert manifest.relation("segsync_fixture.dim_users", "users") == '"warehouse"."main"."dim_users"'


def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such file"):
        Manifest.load(tmp_path / "target" / "manifest.json")
    (tmp_path / "run_results.json").write_bytes(RUN_RESULTS.read_bytes())
    with pytest.raises(ConfigError, match="not a dbt manifest"):
        Manifest.load(tmp_path / "run_results.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot read it"):
        Manifest.load(tmp_path / "broken.json")


def test_the_models_a_dbt_run_built_are_read_from_its_run_results():
    # Given the run results dbt wrote for the fixture (three models built)
    results = orjson.loads(RUN_RESULTS.read_bytes())

    # When / Then the models built successfully are named
    assert built_models(results) == {"stg_users", "dim_users", "fct_signups"}

    # and a model that errored, or a test, is not
    [stg] = [r for r in results["results"] if r["unique_id"] == "model.segsync_fixture.stg_users"]
    stg["status"] = "error"
    results["results"].append({"unique_id": "test.segsync_fixture.not_null_dim_users_email", "status": "pass"})
    assert built_models(results) == {"dim_users", "fct_signups"}

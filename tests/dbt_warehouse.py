"""The dbt fixture's relations, built from its manifest's compiled SQL as ``dbt run`` built them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST = FIXTURES / "dbt_manifest.json"
RUN_RESULTS = FIXTURES / "dbt_run_results.json"
MATERIALIZE = {"view": "VIEW", "table": "TABLE"}


def build_dbt_warehouse(directory: Path) -> Path:
    """A DuckDB file named as the dbt profile names it, holding every view and table the manifest describes.

    dbt-duckdb names the database after the file (``warehouse``), so the manifest's relations
    (``"warehouse"."main"."dim_users"``) resolve in it. Models are created in dependency order; ephemeral
    ones are inlined into their dependents' compiled SQL, as dbt does.
    """
    path = directory / "warehouse.duckdb"
    nodes = orjson.loads(MANIFEST.read_bytes())["nodes"]
    models = {uid: n for uid, n in nodes.items() if n["resource_type"] == "model"}
    built: set[str] = set()
    with duckdb.connect(str(path)) as con:
        while len(built) < len(models):
            ready = [
                uid
                for uid, node in models.items()
                if uid not in built and all(dep in built for dep in node["depends_on"]["nodes"] if dep in models)
            ]
            assert ready, f"the manifest's models depend on each other in a cycle: {sorted(set(models) - built)}"
            for uid in sorted(ready):
                node = models[uid]
                kind = MATERIALIZE.get(node["config"]["materialized"])
                if kind is not None:
                    con.execute(f"CREATE {kind} {node['relation_name']} AS {node['compiled_code']}")
                built.add(uid)
    return path

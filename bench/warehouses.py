"""Scenario 6: the planner handler's rows/s on each warehouse a real engine runs here (DuckDB, PostgreSQL).

``python -m bench.warehouses WORKDIR USERS MOTO_URL RESULT``

The same model (a text key, a decimal, a timestamp with time zone, two strings) and the same sync on
each: a PostgreSQL server started from Debian's binaries (as the tests start it) and a DuckDB file. The
handler plans a first run (diff, stream, chunks to SQS on moto in another process); its wall and CPU
time are measured. Redshift, BigQuery and Databricks run here only behind emulators (PostgreSQL over a
loopback Data API, DuckDB, a local Spark) whose speed says nothing of the real services: not measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

SYNC = "bench-warehouse-users"
MODEL = "SELECT user_id, email, plan, lifetime_value, signed_up_at FROM users"
POSTGRES_TABLE = (
    "CREATE TABLE users AS SELECT 'user_' || LPAD(i::text, 7, '0') AS user_id, 'u' || i || '@example.com' AS email, "
    "(ARRAY['free', 'pro', 'team'])[1 + i % 3] AS plan, (i % 10000)::NUMERIC(12, 2) / 4 AS lifetime_value, "
    "TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 second' AS signed_up_at "
    "FROM generate_series(1, {users}) AS i"
)
DUCKDB_TABLE = (
    "CREATE TABLE users AS SELECT 'user_' || LPAD(i::VARCHAR, 7, '0') AS user_id, 'u' || i || '@example.com' AS email, "
    "(['free', 'pro', 'team'])[1 + i % 3] AS plan, CAST(i % 10000 AS DECIMAL(12, 2)) / 4 AS lifetime_value, "
    "TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1 SECOND AS signed_up_at FROM range(1, {users} + 1) AS t(i)"
)


def _project(connection: dict[str, Any]) -> Any:
    from segsync.config import Project

    os.environ.setdefault("SEGMENT_WRITE_KEY", "bench-write-key")
    segment = {"type": "segment", "endpoint": "http://127.0.0.1:9", "write_key": {"env": "SEGMENT_WRITE_KEY"},
               "events_per_second": 1_000_000_000}  # fmt: skip
    traits = {"email": "email", "plan": "plan", "lifetimeValue": "lifetime_value", "signedUpAt": "signed_up_at"}
    sync = {"name": SYNC, "object": "user", "source": "warehouse", "destination": "segment", "model": MODEL,
            "key": "user_id", "traits": traits}  # fmt: skip
    return Project.model_validate(
        {"version": 1, "connections": {"warehouse": connection, "segment": segment}, "syncs": [sync]}
    )


def _plan(connection: dict[str, Any], moto: str, allowed_hosts: tuple[str, ...] = ()) -> dict[str, Any]:
    """One first run of the sync through the planner handler, timed; ``allowed_hosts``: the stack's
    WarehouseAllowedHosts (a PostgreSQL server has no vendor host)."""
    import requests

    from segsync.local.driver import PLANNER_TIMEOUT_S, LambdaContext, load_handler
    from segsync.local.stack import SYNCS_TABLE, create_resources
    from segsync.store import SyncStore

    requests.post(f"{moto}/moto-api/reset", timeout=30).raise_for_status()
    stack = create_resources(moto, (), allowed_hosts)
    os.environ.update(stack.env)
    SyncStore(stack.table(SYNCS_TABLE)).push(_project(connection))
    handler = load_handler("planner")
    wall_started, cpu_started = time.perf_counter(), time.process_time()
    response = handler({"sync": SYNC}, LambdaContext("segsync-planner", PLANNER_TIMEOUT_S))
    wall, cpu = time.perf_counter() - wall_started, time.process_time() - cpu_started
    [run] = response["runs"]
    return {
        "status": run["status"],
        "rows_read": run["rows_read"],
        "wall_s": round(wall, 3),
        "planner_cpu_s": round(cpu, 3),
        "rows_per_s": round(run["rows_read"] / wall) if wall else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("users", type=int)
    parser.add_argument("moto")
    parser.add_argument("result", type=Path)
    args = parser.parse_args()

    import duckdb
    import psycopg

    from tests import postgres_server as pg

    results: dict[str, Any] = {"users": args.users}
    duckdb_path = args.workdir / "warehouses.duckdb"
    with duckdb.connect(str(duckdb_path)) as con:
        con.execute(DUCKDB_TABLE.format(users=args.users))
    results["duckdb"] = _plan({"type": "duckdb", "path": str(duckdb_path)}, args.moto)

    server = pg.start()
    try:
        server.create_database("bench")
        with psycopg.connect(server.admin_dsn("bench"), autocommit=True) as admin:
            admin.execute(POSTGRES_TABLE.format(users=args.users))
            admin.execute("GRANT SELECT ON users TO segsync; ANALYZE users")
        os.environ["SEGSYNC_WAREHOUSE_BENCH_POSTGRES"] = pg.PASSWORD
        connection = {"type": "postgres", "host": server.host, "port": server.port, "database": "bench",
                      "user": pg.USER, "sslmode": "disable",
                      "credentials": {"env": "SEGSYNC_WAREHOUSE_BENCH_POSTGRES"}}  # fmt: skip
        results["postgres"] = _plan(connection, args.moto, (f"{server.host}:{server.port}",))
    finally:
        pg.stop(server)
    write_result(args.result, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

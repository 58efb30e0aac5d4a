"""Scenario: the warehouse diff with canonical key texts and the length-prefixed row hash, against 0.1's.

``python -m bench.diff WAREHOUSE RESULT``

Both statements materialize the same run table over the same model in the same DuckDB process, taking
turns (``REPEATS`` each, median kept), so the ratio holds whatever else the machine is doing. 0.1's
statement keyed rows by ``CAST(key AS VARCHAR)`` and hashed ``CONCAT_WS(CHR(31), ...)`` with a null
marker (ambiguous: see ``segsync.upgrade``); it is rebuilt here only as the baseline.

Today's statement also numbers its rows for the waves (``Dialect.row_number``, a run-model cost 0.1 did
not have). The target compares like with like, so it measures what the key texts and the unambiguous hash
cost: 0.1's statement numbered the same way. 0.1's statement as it was is timed too, so the whole
difference, numbering included, is on record.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench.common import SYNC_NAME, project, write_result

REPEATS = 5


def legacy_statement(state, sync, destination: str, columns, numbered: bool) -> list[str]:
    """0.1's run table statement (Update or Create), as it was written, over today's state table;
    ``numbered`` adds today's row numbering for the waves, as today's statement numbers them."""
    from segsync.state import nested
    from segsync.upgrade import legacy_hash, legacy_key

    d = state.dialect
    key = legacy_key(state, sync, columns, "m")
    change = (
        "CASE WHEN s.ROW_KEY IS NULL THEN 'new' WHEN s.ROW_HASH <> k.__segsync_row_hash THEN 'changed' "
        "ELSE 'unchanged' END"
    )
    table = state.run_table(sync.name, "bench")
    statement = d.create_table_as(
        table,
        f"WITH m AS (SELECT * FROM (\n{nested(sync.sql)}\n) AS src),\n"
        f"k AS (SELECT {key} AS __segsync_key, COUNT(*) OVER (PARTITION BY {key}) AS __segsync_key_count, "
        f"{legacy_hash(state, sync, columns, 'm')} AS __segsync_row_hash, m.* FROM m)\n"
        f"SELECT k.__segsync_key, k.__segsync_key_count, k.__segsync_row_hash, {change} AS __segsync_change, "
        + (f"{d.row_number()} AS __segsync_seq, " if numbered else "")
        + ", ".join(f"k.{d.quote(c.name)}" for c in columns)
        + f"\nFROM k LEFT JOIN {state.state_table} AS s ON s.SYNC = {d.literal(sync.name)} "
        f"AND s.DESTINATION = {d.literal(destination)} AND s.ROW_KEY = k.__segsync_key",
    )
    return statement + d.number_rows(table, "__segsync_seq") if numbered else statement


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("result", type=Path)
    args = parser.parse_args()

    from segsync.state import WarehouseState, destination_id
    from segsync.warehouse.duckdb import DuckDBWarehouse

    bench = project(args.warehouse, "http://127.0.0.1:9")
    sync = bench.sync(SYNC_NAME)
    destination = destination_id(bench.connections["segment"])
    timings: dict[str, list[float]] = {"current": [], "legacy": [], "legacy_unnumbered": []}
    with DuckDBWarehouse(bench.connections["warehouse"]) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        state.ensure()
        columns = state.model_columns(sync.sql)
        rows = warehouse.query(f"SELECT COUNT(*) FROM ({sync.sql}) AS m")[0][0]
        statements = {
            "current": state.diff_statement(sync, "bench", destination, columns, full_resync=False),
            "legacy": legacy_statement(state, sync, destination, columns, numbered=True),
            "legacy_unnumbered": legacy_statement(state, sync, destination, columns, numbered=False),
        }
        for _ in range(REPEATS):
            for name, statement in statements.items():
                started = time.perf_counter()
                warehouse.execute_all(statement)
                timings[name].append(time.perf_counter() - started)
        state.drop_run(sync.name, "bench")
    current, baseline = statistics.median(timings["current"]), statistics.median(timings["legacy"])
    unnumbered = statistics.median(timings["legacy_unnumbered"])
    write_result(
        args.result,
        {
            "rows": rows,
            "current_s": round(current, 3),
            "legacy_s": round(baseline, 3),
            "time_ratio_vs_0_1": round(current / baseline, 3),
            "legacy_unnumbered_s": round(unnumbered, 3),
            "time_ratio_vs_0_1_unnumbered": round(current / unnumbered, 3),
            "repeats": REPEATS,
            "timings": {name: [round(t, 3) for t in values] for name, values in timings.items()},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Inputs built once per bench run: demo warehouses (DuckDB) and the sender scenario's chunk bodies.

``python -m bench.prep WORKDIR RESULT --users N [N ...] --sender-rows N``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import MODEL, SYNC_NAME, project, write_result

FETCH_ROWS = 10_000
CHUNK_ROWS = 1_000
CHUNK_BYTES = 1_000_000


def warehouse_path(workdir: Path, users: int) -> Path:
    return workdir / f"users_{users}.duckdb"


def chunks_path(workdir: Path) -> Path:
    return workdir / "sender_chunks.txt"


def build_chunks(warehouse: Path, out: Path) -> dict[str, Any]:
    """The model's rows as the planner ships them on a first run: the warehouse's key texts and row
    hashes, the planner's messageIds, ``dump_row`` → ``Chunker`` bodies, one per line.

    The sender scenario decodes these with ``segsync.chunks.decode``, so its rows hold exactly the
    JSON-native values a real chunk carries (decimals as numbers, timestamps as ISO strings).
    """
    from segsync.chunks import Chunker, dump_row, header
    from segsync.mapping import row_message_id
    from segsync.state import WarehouseState
    from segsync.warehouse import connect

    bench = project(warehouse, "http://127.0.0.1:9")
    sync = bench.sync(SYNC_NAME)
    destination = bench.connections["segment"]
    rows = chunks = body_bytes = compressed = 0
    with connect(bench.connections["warehouse"]) as source, out.open("w") as sink:
        state = WarehouseState(source, "SEGSYNC")
        columns = state.model_columns(MODEL)
        chunker = Chunker(
            run_id="bench",
            header=header(
                sync.model_dump(mode="json", by_alias=True, exclude_none=True),
                destination.model_dump(mode="json", exclude_none=True),
                [c.name for c in columns],
            ),
            max_rows=CHUNK_ROWS,
            max_body_bytes=CHUNK_BYTES,
        )

        def encoded() -> Any:
            for batch in source.stream(state.keyed(sync, columns, MODEL), FETCH_ROWS):
                for key, _, row_hash, *values in batch.rows:
                    yield dump_row([key, row_message_id(sync, key, None, row_hash, None), *values])

        for _, count, body in chunker.chunks(encoded()):
            sink.write(body + "\n")
            rows += count
            chunks += 1
            body_bytes += len(body)
            compressed += body.startswith("gz:")
    return {"rows": rows, "chunks": chunks, "body_bytes": body_bytes, "gzip_chunks": compressed}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--users", type=int, nargs="+", required=True)
    parser.add_argument("--sender-rows", type=int, required=True)
    args = parser.parse_args()

    from segsync.local.demo import build_warehouse

    started = time.perf_counter()
    built = {}
    for users in sorted({*args.users, args.sender_rows}):
        path = warehouse_path(args.workdir, users)
        path.unlink(missing_ok=True)
        build_warehouse(path, users=users, events=0)
        built[str(users)] = str(path)
    chunks = build_chunks(warehouse_path(args.workdir, args.sender_rows), chunks_path(args.workdir))
    write_result(
        args.result,
        {"warehouses": built, "chunks": chunks, "seconds": round(time.perf_counter() - started, 2)},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

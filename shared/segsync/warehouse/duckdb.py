"""DuckDB adapter: the embedded default warehouse (a file on disk)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb

from segsync.config import DuckDBConnection
from segsync.errors import WarehouseError
from segsync.warehouse.base import RowBatch, Warehouse


class DuckDBWarehouse(Warehouse):
    """Streams a model from a DuckDB file with ``fetchmany`` (bounded memory)."""

    def __init__(self, connection: DuckDBConnection, read_only: bool = True) -> None:
        try:
            self._con = duckdb.connect(connection.path, read_only=read_only)
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open DuckDB file {connection.path}: {exc}") from None

    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        cursor = self._con.cursor()
        try:
            cursor.execute(sql)
        except duckdb.Error as exc:
            cursor.close()
            raise WarehouseError(str(exc).strip()) from None
        try:
            columns = [d[0] for d in cursor.description]
            while rows := cursor.fetchmany(batch_rows):
                yield RowBatch(columns, rows)
        finally:
            cursor.close()

    def close(self) -> None:
        self._con.close()

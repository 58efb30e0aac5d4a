"""DuckDB adapter: the embedded default warehouse (a file on disk)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from segsync.config import DuckDBConnection
from segsync.errors import WarehouseError
from segsync.warehouse.base import RowBatch, Warehouse
from segsync.warehouse.dialect import Dialect, Kind, ModelColumn

INTEGERS = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
SIMPLE_KINDS = {
    "FLOAT": Kind.FLOAT,
    "DOUBLE": Kind.FLOAT,
    "TIMESTAMP WITH TIME ZONE": Kind.TIMESTAMP_TZ,
    "DATE": Kind.DATE,
    "TIME": Kind.TIME,
    "BOOLEAN": Kind.BOOLEAN,
    "BLOB": Kind.BINARY,
    "VARCHAR": Kind.STRING,
    "JSON": Kind.JSON,
}


class DuckDBWarehouse(Warehouse):
    """Streams a model from a DuckDB file with ``fetchmany`` (bounded memory)."""

    dialect = Dialect()

    def __init__(self, connection: DuckDBConnection, read_only: bool = False) -> None:
        if not Path(connection.path).is_file():
            raise WarehouseError(f"no DuckDB file at {connection.path}")
        try:
            # The embedded warehouse shares the planner's process: a memory limit makes DuckDB spill
            # its diff to disk rather than grow with the model (bounded memory is a guarantee).
            self._con = duckdb.connect(
                connection.path, read_only=read_only, config={"memory_limit": connection.memory_limit}
            )
            # No progress bar: DuckDB would draw it on stdout, where `--json` output goes.
            self._con.execute("SET enable_progress_bar = false")
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

    def describe(self, sql: str) -> list[ModelColumn]:
        try:
            description = self._con.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0").description
        except duckdb.Error as exc:
            raise WarehouseError(str(exc).strip()) from None
        return [ModelColumn(name, kind(str(type_)), str(type_)) for name, type_, *_ in description]

    def execute(self, sql: str) -> None:
        try:
            self._con.execute(sql)
        except duckdb.Error as exc:
            raise WarehouseError(str(exc).strip()) from None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return self._con.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise WarehouseError(str(exc).strip()) from None

    def insert_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        marks = ", ".join("?" for _ in columns)
        try:
            self._con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        except duckdb.Error as exc:
            raise WarehouseError(str(exc).strip()) from None

    def ensure_schema(self, schema: str) -> None:
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    def close(self) -> None:
        self._con.close()


def kind(type_name: str) -> Kind:
    """How segsync renders a DuckDB type as text (``DECIMAL(18,0)`` is an integer)."""
    upper = type_name.upper()
    if upper in INTEGERS:
        return Kind.INTEGER
    if upper.startswith("DECIMAL"):
        return Kind.INTEGER if upper.replace(" ", "").endswith(",0)") else Kind.DECIMAL
    if upper in SIMPLE_KINDS:
        return SIMPLE_KINDS[upper]
    if upper.startswith("TIMESTAMP"):
        return Kind.TIMESTAMP
    if upper.endswith("]") or upper.startswith(("STRUCT(", "MAP(", "UNION(")):
        return Kind.JSON
    return Kind.OTHER

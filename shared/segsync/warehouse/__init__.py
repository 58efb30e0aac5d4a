"""Warehouse adapters behind one interface; dialect differences stay in here."""

from __future__ import annotations

from segsync.config import DuckDBConnection, SnowflakeConnection
from segsync.warehouse.base import RowBatch, Warehouse

__all__ = ["RowBatch", "Warehouse", "connect"]


def connect(connection: DuckDBConnection | SnowflakeConnection) -> Warehouse:
    """Open the adapter for a warehouse connection (credentials resolved from their secret)."""
    if isinstance(connection, DuckDBConnection):
        from segsync.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(connection)
    from segsync.warehouse.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(connection)

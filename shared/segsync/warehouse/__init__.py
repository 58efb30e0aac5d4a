"""Warehouse adapters behind one interface; dialect differences stay in here."""

from __future__ import annotations

from segsync.config import DuckDBConnection, SnowflakeConnection
from segsync.errors import ConfigError
from segsync.warehouse.base import RowBatch, Warehouse

__all__ = ["RowBatch", "Warehouse", "connect"]


def connect(connection: DuckDBConnection | SnowflakeConnection) -> Warehouse:
    """Open the adapter for a warehouse connection (credentials resolved from their secret)."""
    if isinstance(connection, DuckDBConnection):
        try:
            from segsync.warehouse.duckdb import DuckDBWarehouse
        except ImportError:
            # duckdb stays out of the Lambda layer (size): a DuckDB source is for local mode.
            raise ConfigError("DuckDB warehouses run in local mode only (duckdb is not in the Lambda layer)") from None
        return DuckDBWarehouse(connection)
    from segsync.warehouse.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse(connection)

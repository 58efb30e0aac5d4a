"""Warehouse adapters behind one interface; dialect differences stay in here."""

from __future__ import annotations

from importlib import import_module

from segsync.config import AnyWarehouseConnection, DuckDBConnection
from segsync.errors import ConfigError
from segsync.warehouse.base import RowBatch, Warehouse

__all__ = ["RowBatch", "Warehouse", "connect"]

ADAPTERS = {
    "snowflake": ("segsync.warehouse.snowflake", "SnowflakeWarehouse"),
    "postgres": ("segsync.warehouse.postgres", "PostgresWarehouse"),
    "redshift": ("segsync.warehouse.redshift", "RedshiftWarehouse"),
    "bigquery": ("segsync.warehouse.bigquery", "BigQueryWarehouse"),
    "databricks": ("segsync.warehouse.databricks", "DatabricksWarehouse"),
}
"""Each adapter is imported only when a connection uses it: a planner loads one connector, not five."""


def connect(connection: AnyWarehouseConnection) -> Warehouse:
    """Open the adapter for a warehouse connection (credentials resolved from their secret)."""
    if isinstance(connection, DuckDBConnection):
        try:
            from segsync.warehouse.duckdb import DuckDBWarehouse
        except ImportError:
            # duckdb stays out of the Lambda layer (size): a DuckDB source is for local mode.
            raise ConfigError("DuckDB warehouses run in local mode only (duckdb is not in the Lambda layer)") from None
        return DuckDBWarehouse(connection)
    module, name = ADAPTERS[connection.type]
    return getattr(import_module(module), name)(connection)

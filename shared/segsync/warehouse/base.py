"""The one small interface every warehouse adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from segsync.warehouse.dialect import Dialect, ModelColumn


@dataclass(frozen=True)
class RowBatch:
    """A slice of a query's result: column names once, then rows as tuples in that order."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class Warehouse(ABC):
    """Runs a model query and streams its rows; keeps segsync's bookkeeping tables.

    SQL is written once (segsync.state); what differs between warehouses' SQL is the adapter's
    ``dialect``, and what differs in talking to them (placeholders, types, schema creation side
    effects) lives in the adapters.
    """

    dialect: Dialect

    @abstractmethod
    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        """Yield the query's rows in batches of at most ``batch_rows``.

        Raises:
            WarehouseError: the warehouse refused the query (the message quotes the warehouse).
        """

    @abstractmethod
    def describe(self, sql: str) -> list[ModelColumn]:
        """The columns a query would return: names as the warehouse spells them, and their types."""

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL, MERGE); WarehouseError on failure."""

    def execute_all(self, statements: list[str]) -> None:
        """Run statements that belong together (a dialect's rendering of one step), in order.

        Adapters whose engine can run them as one transaction do so.
        """
        for statement in statements:
            self.execute(statement)

    @abstractmethod
    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a query whose result is small (counts, history) and return all its rows."""

    @abstractmethod
    def insert_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        """Insert rows with bound parameters (never values pasted into SQL)."""

    @abstractmethod
    def ensure_schema(self, schema: str) -> None:
        """Create the bookkeeping schema if missing, leaving the session's current schema as it was."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

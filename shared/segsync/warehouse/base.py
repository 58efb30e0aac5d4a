"""The one small interface every warehouse adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RowBatch:
    """A slice of a query's result: column names once, then rows as tuples in that order."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class Warehouse(ABC):
    """Runs a model query and streams its rows; never materializes the whole result."""

    @abstractmethod
    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        """Yield the query's rows in batches of at most ``batch_rows``.

        Raises:
            WarehouseError: the warehouse refused the query (the message quotes the warehouse).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

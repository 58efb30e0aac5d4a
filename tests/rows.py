"""Rows as the planner puts them in chunks: the key's text and the messageId first, then the model's values.

The planner takes the key text from the warehouse (``segsync.warehouse.dialect``) and writes the
messageId (``segsync.mapping.row_message_id``); tests that map rows directly build the same layout.
"""

from __future__ import annotations

from typing import Any

from segsync.mapping import Mapped, Mapper, as_id, column_index, row_message_id
from segsync.store import Rejection

NEW_ROW_HASH = "0" * 32


def chunk_row(
    mapper: Mapper, values: list[Any], *, previous_hash: str | None = None, row_hash: str = NEW_ROW_HASH
) -> list[Any]:
    """``values`` (in the mapper's columns) as a chunk carries them; test keys are text or integers."""
    raw_key = values[column_index(mapper.columns, mapper.sync.name)(mapper.sync.key, "key")]
    key = None if raw_key is None else as_id(raw_key)
    message_id = None if key is None else row_message_id(mapper.sync, key, previous_hash, row_hash, None)
    return [key, message_id, *values]


def map_row(mapper: Mapper, values: list[Any], **hashes: Any) -> Mapped | Rejection:
    """Map model values the way the sender maps the chunk row the planner made of them."""
    return mapper.map(chunk_row(mapper, values, **hashes))

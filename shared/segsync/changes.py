"""Change kinds: which rows of a run send a message, which are only recorded, and what a removed row carries.

Every row of a run table has a change kind (``state.CHANGE``); what a sync sends for each:

============  ==================  ==============  ===============================================
kind          User, Group         Track append    Track ``behavior: changes``
============  ==================  ==============  ===============================================
new           identify / group    track           ``events.added``
changed       identify / group    (never found)   ``events.changed``
removed       ``on_removal:       (not looked     ``events.removed``, with the values last
              clear``: traits     for)            delivered
              all null
resync        identify / group    track           (refused: see ``check_request``)
============  ==================  ==============  ===============================================

Removed rows are keys in state that the model no longer has; only syncs that send something for them look
for them (``tracks_removals``), so the others keep the plain diff. A kind a sync tracks but sends nothing
for (a changes sync that names no event for it; every kind in a baseline, ``--mark-synced``) is *settled*
when the run is planned: recorded in state as delivered, without a message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import orjson

from segsync.config import AnySync, TrackSync
from segsync.errors import ConfigError, MassRemoval
from segsync.warehouse.dialect import Kind, ModelColumn

NEW, CHANGED, UNCHANGED, RESYNC, REMOVED = "new", "changed", "unchanged", "resync", "removed"
EVENT_OF = {NEW: "added", CHANGED: "changed", REMOVED: "removed"}
"""A changes sync's ``events:`` key for each change kind."""
CHANGE_COLUMN = "__segsync_change"
FOUND_AT_COLUMN = "__segsync_found_at"
"""Chunk columns after the model's, for syncs whose messages depend on the change: its kind, and when the run
that found it started (epoch seconds: the event's time unless a column gives one)."""
DEFAULT_MAX_REMOVED_SHARE = 0.5


def sends_changes(sync: AnySync) -> bool:
    """A Track sync that turns the diff into events (``behavior: changes``)."""
    return isinstance(sync, TrackSync) and sync.behavior == "changes"


def tracks_removals(sync: AnySync) -> bool:
    """Whether a run looks for keys that left the model: only when the sync has something to do with them."""
    return sends_changes(sync) or getattr(sync, "on_removal", None) == "clear"


def recorded_kinds(sync: AnySync) -> tuple[str, ...]:
    """The kinds of rows a run moves state forward for (in state, or out of it)."""
    return (NEW, CHANGED, RESYNC, REMOVED) if tracks_removals(sync) else (NEW, CHANGED, RESYNC)


def sent_kinds(sync: AnySync) -> tuple[str, ...]:
    """The kinds of rows a run sends a message for; state takes them only once Segment accepted them."""
    if isinstance(sync, TrackSync) and sync.events is not None:
        return tuple(kind for kind, event in EVENT_OF.items() if getattr(sync.events, event) is not None)
    return recorded_kinds(sync)


def silent_kinds(sync: AnySync, *, baseline: bool) -> tuple[str, ...]:
    """The kinds a run records without sending: every kind in a baseline, else those no event is named for."""
    sent = () if baseline else sent_kinds(sync)
    return tuple(kind for kind in recorded_kinds(sync) if kind not in sent)


def keeps_values(sync: AnySync) -> bool:
    """Whether state keeps each key's last delivered values: a removal is sent with them."""
    return REMOVED in sent_kinds(sync)


def max_removed_share(sync: AnySync) -> float:
    share = getattr(sync, "max_removed_share", None)
    return DEFAULT_MAX_REMOVED_SHARE if share is None else share


def check_options(*, full_resync: bool, baseline: bool) -> None:
    """Refuse run options that contradict each other (ConfigError): the commands ask before starting anything."""
    if full_resync and baseline:
        raise ConfigError("--full-resync sends every row and --mark-synced sends none: ask for one of them")


def check_request(sync: AnySync, *, full_resync: bool, baseline: bool) -> None:
    """Refuse a run whose options contradict each other or the sync (ConfigError, the reason in one line)."""
    check_options(full_resync=full_resync, baseline=baseline)
    if full_resync and sends_changes(sync):
        raise ConfigError(
            "a changes sync sends events for what changed: a full resync would send every row as 'added' "
            "again; to start over from the model as it is without sending anything, run it with --mark-synced"
        )


def check_removals(sync: AnySync, *, removed: int, delivered: int, rows: int, allowed: bool) -> None:
    """A removal is only a removal: refuse a run that would remove too much at once, unless ``allowed``.

    Raises:
        MassRemoval: the model returned no rows while keys were delivered before, or more than the sync's
            ``max_removed_share`` of those keys are gone. Nothing has been sent or recorded yet.
    """
    if not removed or allowed:
        return
    how = "no removals are sent and the run fails; if they really left, run it again with --allow-mass-removal"
    if rows == 0:
        raise MassRemoval(
            f"the model returned no rows, so all {delivered:,} keys delivered before would be removed: {how}"
        )
    share = max_removed_share(sync)
    if removed > share * delivered:
        raise MassRemoval(
            f"{removed:,} of the {delivered:,} keys delivered before are no longer in the model "
            f"({removed / delivered:.0%}, over max_removed_share {share:g}): {how}"
        )


def chunk_columns(sync: AnySync, names: list[str]) -> list[str]:
    """A chunk's ``columns`` for a model with ``names``: the model's, then the change's where removals are sent."""
    return [*names, CHANGE_COLUMN, FOUND_AT_COLUMN] if tracks_removals(sync) else names


class ChunkValues:
    """A run table row's values as a chunk carries them, for one run of one sync.

    Most syncs' chunks carry the model's values as the run table holds them. A sync that tracks removals
    also gets the change kind and the time the run found it (``CHANGE_COLUMN``, ``FOUND_AT_COLUMN``), and a
    removed row (whose model values are gone) gets the values last delivered for it, read back from state.
    """

    def __init__(self, sync: AnySync, columns: list[ModelColumn], found_at: float) -> None:
        self._columns = columns
        self._marked = tracks_removals(sync)
        self._found_at = found_at
        self.names = chunk_columns(sync, [c.name for c in columns])
        """The chunk's ``columns``."""

    def __call__(self, change: str, previous_values: str | None, values: Sequence[Any]) -> Sequence[Any]:
        if not self._marked:
            return values
        if change == REMOVED:
            values = last_values(previous_values, self._columns)
        return (*values, change, self._found_at)


def last_values(stored: str | None, columns: list[ModelColumn]) -> list[Any]:
    """A removed key's values for ``columns`` as state kept them (``ROW_VALUES``), None where none were kept."""
    # Leniently: Redshift's text may hold a raw control character (RedshiftDialect.json_object).
    kept = json.loads(stored, strict=False) if stored else {}
    return [from_text(kept.get(c.name), c.kind) for c in columns]


def from_text(text: str | None, kind: Kind) -> Any:
    """A value back from its canonical text (``Dialect.text``), as the warehouse's driver would have given it.

    State keeps a delivered row's values as their canonical texts (the one text of a value, whatever the
    session); read back here they travel and map like the model's own values did.
    """
    if text is None:
        return None
    if kind is Kind.INTEGER:
        return int(text)
    if kind is Kind.DECIMAL:
        return Decimal(text)
    if kind is Kind.FLOAT:
        return float(text)
    if kind is Kind.BOOLEAN:
        return text == "true"
    if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_TZ):
        return datetime.fromisoformat(text)
    if kind is Kind.DATE:
        return date.fromisoformat(text)
    if kind is Kind.TIME:
        return time.fromisoformat(text)
    if kind is Kind.BINARY:
        return bytes.fromhex(text)
    if kind is Kind.JSON:
        return orjson.loads(text)
    return text

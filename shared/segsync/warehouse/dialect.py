"""What differs between warehouses' SQL, in one place: quoting, literals, and the canonical text of a value.

The canonical text is how segsync writes a key (in state, chunks, rejected records, the CLI, and as
userId/anonymousId/groupId) and what the row hash reads. It depends only on the value and its type,
never on session settings (time zone, output formats), and is the same in every warehouse:

- integers and integral decimals as integers: ``7``; other decimals without trailing zeros: ``7.5``;
- floats: integral ones below 2**53 as integers, others as the shortest text that reads back (``0.1``);
- timestamps in UTC, ISO-8601, ``T`` and ``Z``, with every fractional digit the type keeps and no
  trailing zeros: ``2024-01-01T00:00:00.000000001Z``; dates ``2024-01-02``;
- booleans ``true``/``false``; binary as lowercase hex; arrays and objects as JSON; text as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """A column's type as far as segsync's SQL cares: how its canonical text is written."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    TIMESTAMP = "timestamp"
    TIMESTAMP_TZ = "timestamp_tz"
    DATE = "date"
    TIME = "time"
    BOOLEAN = "boolean"
    BINARY = "binary"
    STRING = "string"
    JSON = "json"
    OTHER = "other"


@dataclass(frozen=True)
class ModelColumn:
    """A model column as the warehouse describes it.

    Attributes:
        name: spelled as the warehouse reports it (Snowflake upper-cases unquoted names).
        kind: how segsync renders its values as text.
        type: the warehouse's own type name, for messages.
    """

    name: str
    kind: Kind
    type: str


TRAILING_ZEROS = r"\.?0+$"
"""A fraction's trailing zeros and, when nothing is left of it, its point (in a text that holds one)."""
FLOAT_EXACT_INTEGERS = 2**53
"""Below this, every integral float is an exact integer, so it prints as one (``7.0`` → ``7``)."""


class Dialect:
    """DuckDB's SQL; other warehouses override what differs."""

    name = "duckdb"

    def quote(self, identifier: str) -> str:
        """Quote a column name exactly as the warehouse reported it (its case kept)."""
        return '"' + identifier.replace('"', '""') + '"'

    def literal(self, text: str) -> str:
        """A string literal, for names and ids segsync controls (row values are always bound)."""
        return "'" + text.replace("'", "''") + "'"

    def text(self, expr: str, kind: Kind) -> str:
        """SQL for the canonical text of ``expr`` (NULL stays NULL); see the module docstring."""
        if kind is Kind.STRING:
            return expr
        if kind is Kind.DECIMAL:
            return self.trim_fraction(f"CAST({expr} AS VARCHAR)")
        if kind is Kind.FLOAT:
            return (
                f"CASE WHEN {expr} = TRUNC({expr}) AND ABS({expr}) < {FLOAT_EXACT_INTEGERS} "
                f"THEN CAST(CAST({expr} AS BIGINT) AS VARCHAR) ELSE CAST({expr} AS VARCHAR) END"
            )
        if kind is Kind.TIMESTAMP:
            # DuckDB prints a timestamp's fraction without trailing zeros, whatever its precision.
            return f"REPLACE(CAST({expr} AS VARCHAR), ' ', 'T') || 'Z'"
        if kind is Kind.TIMESTAMP_TZ:
            # CAST of a TIMESTAMPTZ follows the session's TimeZone: take it to UTC first.
            return f"REPLACE(CAST(TIMEZONE('UTC', {expr}) AS VARCHAR), ' ', 'T') || 'Z'"
        if kind is Kind.BINARY:
            return f"LOWER(HEX({expr}))"
        if kind is Kind.JSON:
            return f"CAST(TO_JSON({expr}) AS VARCHAR)"
        return f"CAST({expr} AS VARCHAR)"

    def hash_text(self, expr: str, kind: Kind) -> str:
        """SQL for a value's text as the row hash reads it: stable across sessions, and cheap.

        DuckDB's plain text of a value depends on nothing but the value, except a TIMESTAMPTZ's (the
        session's TimeZone); the canonical text's trimming would only cost time here.
        """
        return self.text(expr, kind) if kind is Kind.TIMESTAMP_TZ else f"CAST({expr} AS VARCHAR)"

    def row_hash(self, seed: str, texts: list[str]) -> str:
        """SQL for the MD5 (32 lowercase hex digits) of a seed and a row's value texts, NULLs included.

        The texts are written as a JSON array: quoting and escaping keep every value apart from the
        next and a NULL apart from any text, so two different rows never share a hash input.
        """
        return f"MD5({seed} || TO_JSON([{', '.join(texts)}]))"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        """SQL for the JSON text of an object of (name, SQL expression) pairs, a NULL value kept as ``null``.

        State keeps a delivered row's values in one (``ROW_VALUES``), each value its canonical text.
        """
        return f"CAST(TO_JSON(STRUCT_PACK({', '.join(f'{self.quote(n)} := {e}' for n, e in pairs)})) AS VARCHAR)"

    def trim_fraction(self, text: str) -> str:
        """Drop trailing zeros after a decimal point, then a bare point: ``7.50`` → ``7.5``, ``7.00`` → ``7``.

        Only for texts that always hold a point (decimals with a scale, FF9 fractions): on ``10`` it would
        eat the zero.
        """
        return f"RTRIM(RTRIM({text}, '0'), '.')"


class SnowflakeDialect(Dialect):
    """Snowflake: output formats are session parameters, so every temporal and binary value is formatted
    explicitly; backslashes in literals are escapes."""

    name = "snowflake"
    TIMESTAMP_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.FF9'

    def literal(self, text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        # OBJECT_CONSTRUCT would drop a NULL value's key; the _KEEP_NULL form writes it as JSON null.
        return f"TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL({', '.join(f'{self.literal(n)}, {e}' for n, e in pairs)}))"

    def trim_fraction(self, text: str) -> str:
        # A regular expression rather than RTRIM(x, chars), which fakesnow (the tests' Snowflake) misreads.
        return f"REGEXP_REPLACE({text}, {self.literal(TRAILING_ZEROS)}, '')"

    def hash_text(self, expr: str, kind: Kind) -> str:
        # Output formats of temporal and binary values are session parameters: those take their canonical text.
        if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_TZ, Kind.DATE, Kind.TIME, Kind.BINARY):
            return self.text(expr, kind)
        return f"CAST({expr} AS VARCHAR)"

    def row_hash(self, seed: str, texts: list[str]) -> str:
        # Each text as its length, ':' and the text, '~' for NULL: a value cannot imitate a boundary or
        # a NULL. (ARRAY_CONSTRUCT would keep a NULL as an undefined element, which TO_JSON may drop.)
        parts = " || ".join(f"COALESCE(CAST(LENGTH({t}) AS VARCHAR) || ':' || {t}, '~')" for t in texts)
        return f"MD5({seed} || {parts})"

    def text(self, expr: str, kind: Kind) -> str:
        if kind is Kind.DECIMAL:
            return self.trim_fraction(f"TO_VARCHAR({expr})")
        if kind is Kind.FLOAT:
            return (
                f"CASE WHEN {expr} = TRUNC({expr}) AND ABS({expr}) < {FLOAT_EXACT_INTEGERS} "
                f"THEN TO_VARCHAR(CAST({expr} AS NUMBER(38, 0))) ELSE TO_VARCHAR({expr}) END"
            )
        if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_TZ):
            utc = f"CONVERT_TIMEZONE('UTC', {expr})" if kind is Kind.TIMESTAMP_TZ else expr
            # FF9 always prints nine digits after the point: trimming zeros then the point stops there.
            fixed = f"TO_VARCHAR(CAST({utc} AS TIMESTAMP_NTZ(9)), {self.literal(self.TIMESTAMP_FORMAT)})"
            return self.trim_fraction(fixed) + " || 'Z'"
        if kind is Kind.DATE:
            return f"TO_VARCHAR(CAST({expr} AS DATE), 'YYYY-MM-DD')"
        if kind is Kind.TIME:
            return self.trim_fraction(f"TO_VARCHAR(CAST({expr} AS TIME), 'HH24:MI:SS.FF9')")
        if kind is Kind.BOOLEAN:
            return f"TO_VARCHAR({expr})"
        if kind is Kind.BINARY:
            return f"HEX_ENCODE({expr}, 0)"
        if kind is Kind.JSON:
            return f"TO_JSON({expr})"
        return super().text(expr, kind)

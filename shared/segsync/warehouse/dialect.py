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

import json
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
    """DuckDB's SQL; other warehouses override what differs.

    Statements are written once (segsync.state); what differs between engines goes through these
    methods: quoting and literals, type names, statements some engines lack (``CREATE OR REPLACE
    TABLE``, ``MERGE``), and the canonical text of each kind of value.
    """

    name = "duckdb"
    string_type = "VARCHAR"
    """The bookkeeping tables' text type, and what values are cast to for their text."""

    def table(self, schema: str, name: str) -> str:
        """A bookkeeping table's name; unquoted, so each engine folds its case as it does for the user."""
        return f"{schema}.{name}"

    def create_table_as(self, table: str, select: str) -> list[str]:
        """Statements that (re)create ``table`` from a query, replacing any earlier one."""
        return [f"CREATE OR REPLACE TABLE {table} AS\n{select}"]

    ROW_POSITION: str | None = "rowid"
    """The pseudo-column holding each row's place in a table just made (0, 1, ...), where the engine has one."""

    def row_number(self) -> str:
        """SQL a new run table's rows are numbered with (``SEQ``) in the statement that makes it.

        ``ROW_NUMBER() OVER ()`` where the engine has no row position. Where it has one (``ROW_POSITION``), a
        placeholder that ``number_rows`` fills after: DuckDB runs a statement holding ``ROW_NUMBER() OVER ()``
        on one thread, which made the diff 2.3 times as long at 1M rows (``python -m bench.diff``).
        """
        return "ROW_NUMBER() OVER ()" if self.ROW_POSITION is None else "CAST(NULL AS BIGINT)"

    def number_rows(self, table: str, column: str) -> list[str]:
        """Statements that number a table just made (``create_table_as``) 1..N in ``column``, if ``row_number``
        left it to them. A row's position is unique and fixed: nothing deletes from a run table."""
        return [] if self.ROW_POSITION is None else [f"UPDATE {table} SET {column} = {self.ROW_POSITION} + 1"]

    def table_exists(self, schema: str, name: str) -> str:
        """A query that returns a row when the table exists (names compared case-insensitively)."""
        return (
            "SELECT 1 FROM information_schema.tables "
            f"WHERE UPPER(table_schema) = {self.literal(schema.upper())} "
            f"AND UPPER(table_name) = {self.literal(name.upper())}"
        )

    def merge(
        self, target: str, source: str, on: list[str], update: dict[str, str], insert: dict[str, str] | None = None
    ) -> list[str]:
        """Statements that upsert ``source``'s rows into ``target``.

        ``source`` is a query (aliased ``d``), ``target`` is aliased ``s``; rows match on the ``on``
        columns; a match gets the ``update`` assignments (column → expression over ``s`` and ``d``),
        and, when ``insert`` is given, a row with no match is inserted (column → expression over ``d``).
        """
        match = " AND ".join(f"s.{c} = d.{c}" for c in on)
        sets = ", ".join(f"{column} = {expr}" for column, expr in update.items())
        statement = (
            f"MERGE INTO {target} AS s USING (\n{source}\n) AS d ON {match}\nWHEN MATCHED THEN UPDATE SET {sets}"
        )
        if insert:
            statement += f"\nWHEN NOT MATCHED THEN INSERT ({', '.join(insert)}) VALUES ({', '.join(insert.values())})"
        return [statement]

    def cast_text(self, expr: str) -> str:
        """The engine's own text of a value (session-independent only where the caller knows it is)."""
        return f"CAST({expr} AS {self.string_type})"

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

    def length_prefixed(self, seed: str, texts: list[str]) -> str:
        """The seed, then each text as its length, ``:`` and the text, ``~`` for NULL: no value can imitate a
        boundary or a NULL. For engines whose JSON cannot hold a NULL in an array, or has no JSON."""
        parts = " || ".join(f"COALESCE({self.cast_text(f'LENGTH({t})')} || ':' || {t}, '~')" for t in texts)
        return f"{seed} || {parts}"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        """SQL for the JSON text of an object of (name, text expression) pairs, a NULL kept as ``null``.

        State keeps a delivered row's values in one (``ROW_VALUES``), each value its canonical text. An
        engine that drops a NULL member instead loses nothing: a missing name reads back as NULL.
        """
        return f"CAST(TO_JSON(STRUCT_PACK({', '.join(f'{self.quote(n)} := {e}' for n, e in pairs)})) AS VARCHAR)"

    def add_column(self, table: str, column: str, type_: str) -> str:
        """A statement adding a nullable column to a bookkeeping table (the caller checks it is missing)."""
        return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {type_}"

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
    ROW_POSITION = None
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
        # ARRAY_CONSTRUCT would keep a NULL as an undefined element, which TO_JSON may drop.
        return f"MD5({self.length_prefixed(seed, texts)})"

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


JSON_ESCAPES = (("\\", "CHR(92) || CHR(92)"), ('"', "CHR(92) || CHR(34)"), ("\n", "CHR(92) || 'n'"),
                ("\r", "CHR(92) || 'r'"), ("\t", "CHR(92) || 't'"))  # fmt: skip
"""What a JSON string escapes, as written by engines that build JSON text themselves (the backslash first)."""
TRIM_SAFE = "CASE WHEN POSITION('.' IN {t}) > 0 THEN RTRIM(RTRIM({t}, '0'), '.') ELSE {t} END"
"""Trailing zeros trimmed only from a text that holds a point: an unconstrained NUMERIC may print ``10``."""
JSON_SPACES = r'("(?:[^"\\]|\\.)*")|\s+'
"""jsonb's text puts a space after each ``:`` and ``,``; this drops whitespace outside the JSON's strings."""


class PostgresDialect(Dialect):
    """PostgreSQL: no ``CREATE OR REPLACE TABLE``, no ``MERGE`` before 15, formats that follow the session.

    Timestamps and dates are written with ``to_char`` (``DateStyle`` and ``TimeZone`` cannot reach them),
    binary with ``encode`` (not ``bytea_output``); the adapter pins ``extra_float_digits`` and
    ``IntervalStyle`` for the texts the engine writes itself. Unquoted names fold to lower case.
    """

    name = "postgres"
    ROW_POSITION = None
    TIME_FORMAT = "HH24:MI:SS.US"

    def create_table_as(self, table: str, select: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} AS\n{select}"]

    def merge(
        self, target: str, source: str, on: list[str], update: dict[str, str], insert: dict[str, str] | None = None
    ) -> list[str]:
        # MERGE came in PostgreSQL 15 (and Redshift's has other rules): UPDATE ... FROM, then INSERT ... WHERE
        # NOT EXISTS, which every version runs. The adapter runs both in one transaction.
        match = " AND ".join(f"s.{c} = d.{c}" for c in on)
        sets = ", ".join(f"{column} = {expr}" for column, expr in update.items())
        statements = [f"UPDATE {target} AS s SET {sets}\nFROM (\n{source}\n) AS d WHERE {match}"]
        if insert:
            statements.append(
                f"INSERT INTO {target} ({', '.join(insert)})\nSELECT {', '.join(insert.values())} FROM (\n{source}\n)"
                f" AS d WHERE NOT EXISTS (SELECT 1 FROM {target} AS s WHERE {match})"
            )
        return statements

    def trim_fraction(self, text: str) -> str:
        return TRIM_SAFE.format(t=text)

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        # Two text arrays rather than json_build_object, whose 100 arguments would cap a row at 50 columns.
        names = ", ".join(self.literal(n) for n, _ in pairs)
        texts = ", ".join(self.cast_text(e) for _, e in pairs)
        return self.cast_text(f"JSON_OBJECT(CAST(ARRAY[{names}] AS TEXT[]), CAST(ARRAY[{texts}] AS TEXT[]))")

    def row_hash(self, seed: str, texts: list[str]) -> str:
        return f"MD5({self.length_prefixed(seed, texts)})"

    def hash_text(self, expr: str, kind: Kind) -> str:
        if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_TZ, Kind.DATE, Kind.BINARY):
            return self.text(expr, kind)
        return self.cast_text(expr)

    def timestamp_text(self, expr: str) -> str:
        """A timestamp without time zone as ``YYYY-MM-DDTHH:MI:SS[.fraction]Z`` (microseconds, trimmed)."""
        clock = Dialect.trim_fraction(self, f"TO_CHAR({expr}, {self.literal(self.TIME_FORMAT)})")
        return f"TO_CHAR({expr}, 'YYYY-MM-DD') || 'T' || {clock} || 'Z'"

    def text(self, expr: str, kind: Kind) -> str:
        if kind is Kind.STRING:
            return expr
        if kind is Kind.DECIMAL:
            return self.trim_fraction(self.cast_text(expr))
        if kind is Kind.FLOAT:
            return (
                f"CASE WHEN {expr} = TRUNC({expr}) AND ABS({expr}) < {FLOAT_EXACT_INTEGERS} "
                f"THEN {self.cast_text(f'CAST({expr} AS BIGINT)')} ELSE {self.cast_text(expr)} END"
            )
        if kind is Kind.TIMESTAMP:
            return self.timestamp_text(expr)
        if kind is Kind.TIMESTAMP_TZ:
            return self.timestamp_text(f"({expr} AT TIME ZONE 'UTC')")
        if kind is Kind.DATE:
            return f"TO_CHAR({expr}, 'YYYY-MM-DD')"
        if kind is Kind.BINARY:
            return f"ENCODE({expr}, 'hex')"
        if kind is Kind.JSON:
            return f"REGEXP_REPLACE({self.cast_text(f'TO_JSONB({expr})')}, {self.literal(JSON_SPACES)}, '\\1', 'g')"
        return self.cast_text(expr)


class RedshiftDialect(PostgresDialect):
    """Amazon Redshift: PostgreSQL 8's SQL, with ``VARCHAR`` of 256 bytes unless told, SUPER for JSON and
    VARBYTE for binary."""

    name = "redshift"
    string_type = "VARCHAR(65535)"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        # Redshift builds JSON only out of SUPER values, and PostgreSQL's JSON_OBJECT is not Redshift's: the
        # text is written out, each value a JSON string with its backslashes, quotes and line breaks escaped.
        # (A rarer control character stays raw: segsync reads these texts leniently.)
        members = " || ',' || ".join(
            f"{self.literal(json.dumps(n, ensure_ascii=False) + ':')} || COALESCE({self._json_string(e)}, 'null')"
            for n, e in pairs
        )
        return f"'{{' || {members} || '}}'"

    def _json_string(self, expr: str) -> str:
        escaped = expr
        for char, escape in JSON_ESCAPES:
            escaped = f"REPLACE({escaped}, CHR({ord(char)}), {escape})"
        return f"CHR(34) || {escaped} || CHR(34)"

    def add_column(self, table: str, column: str, type_: str) -> str:
        # Redshift's ADD COLUMN has no IF NOT EXISTS.
        return f"ALTER TABLE {table} ADD COLUMN {column} {type_}"

    def text(self, expr: str, kind: Kind) -> str:
        if kind is Kind.BINARY:
            return f"LOWER(TO_HEX({expr}))"
        if kind is Kind.JSON:
            return f"JSON_SERIALIZE({expr})"
        return super().text(expr, kind)


class BigQueryDialect(Dialect):
    """Google BigQuery: backticks, backslash escapes, ``STRING``, MD5 as bytes, ``FORMAT_*`` for temporal text."""

    name = "bigquery"
    ROW_POSITION = None
    string_type = "STRING"
    FRACTION_FORMAT = "%Y-%m-%dT%H:%M:%E6S"

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def literal(self, text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        return f"TO_JSON_STRING(STRUCT({', '.join(f'{e} AS {self.quote(n)}' for n, e in pairs)}))"

    def table_exists(self, schema: str, name: str) -> str:
        # A dataset's own INFORMATION_SCHEMA: no region qualifier needed.
        return (
            f"SELECT 1 FROM {schema}.INFORMATION_SCHEMA.TABLES WHERE UPPER(table_name) = {self.literal(name.upper())}"
        )

    def trim_fraction(self, text: str) -> str:
        return f"REGEXP_REPLACE({text}, {self.literal(TRAILING_ZEROS)}, '')"

    def row_hash(self, seed: str, texts: list[str]) -> str:
        return f"TO_HEX(MD5({self.length_prefixed(seed, texts)}))"

    def hash_text(self, expr: str, kind: Kind) -> str:
        if kind in (Kind.BINARY, Kind.JSON):
            return self.text(expr, kind)
        return self.cast_text(expr)

    def text(self, expr: str, kind: Kind) -> str:
        if kind is Kind.STRING:
            return expr
        if kind is Kind.DECIMAL:
            # BigQuery prints NUMERIC without trailing zeros; another engine may print its scale.
            text = self.cast_text(expr)
            return f"CASE WHEN STRPOS({text}, '.') > 0 THEN {self.trim_fraction(text)} ELSE {text} END"
        if kind is Kind.FLOAT:
            return (
                f"CASE WHEN {expr} = TRUNC({expr}) AND ABS({expr}) < {FLOAT_EXACT_INTEGERS} "
                f"THEN CAST(CAST({expr} AS INT64) AS STRING) ELSE CAST({expr} AS STRING) END"
            )
        if kind is Kind.TIMESTAMP_TZ:
            fixed = f"FORMAT_TIMESTAMP({self.literal(self.FRACTION_FORMAT)}, {expr}, 'UTC')"
            return self.trim_fraction(fixed) + " || 'Z'"
        if kind is Kind.TIMESTAMP:
            return self.trim_fraction(f"FORMAT_DATETIME({self.literal(self.FRACTION_FORMAT)}, {expr})") + " || 'Z'"
        if kind is Kind.DATE:
            return f"FORMAT_DATE('%Y-%m-%d', {expr})"
        if kind is Kind.TIME:
            return self.trim_fraction(f"FORMAT_TIME('%H:%M:%E6S', {expr})")
        if kind is Kind.BINARY:
            return f"TO_HEX({expr})"
        if kind is Kind.JSON:
            return f"TO_JSON_STRING({expr})"
        return self.cast_text(expr)


class DatabricksDialect(Dialect):
    """Databricks SQL (Spark SQL on Delta): backticks, backslash escapes, ``STRING``, Java date patterns, and
    timestamps rendered in the session's time zone unless taken to UTC first."""

    name = "databricks"
    ROW_POSITION = None
    string_type = "STRING"
    FRACTION_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def literal(self, text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def table_exists(self, schema: str, name: str) -> str:
        # SHOW TABLES works in the Hive metastore and in Unity Catalog alike; its pattern ignores case.
        return f"SHOW TABLES IN {schema} LIKE {self.literal(name.lower())}"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        # TO_JSON drops a NULL member unless told not to.
        members = ", ".join(f"{self.literal(n)}, {e}" for n, e in pairs)
        return f"TO_JSON(NAMED_STRUCT({members}), MAP('ignoreNullFields', 'false'))"

    def add_column(self, table: str, column: str, type_: str) -> str:
        # Spark's ADD COLUMNS has no IF NOT EXISTS.
        return f"ALTER TABLE {table} ADD COLUMNS ({column} {type_})"

    def trim_fraction(self, text: str) -> str:
        return f"REGEXP_REPLACE({text}, {self.literal(TRAILING_ZEROS)}, '')"

    def row_hash(self, seed: str, texts: list[str]) -> str:
        return f"MD5({self.length_prefixed(seed, texts)})"

    def hash_text(self, expr: str, kind: Kind) -> str:
        if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_TZ, Kind.BINARY, Kind.JSON):
            return self.text(expr, kind)
        return self.cast_text(expr)

    def text(self, expr: str, kind: Kind) -> str:
        if kind is Kind.STRING:
            return expr
        if kind is Kind.DECIMAL:
            return self.trim_fraction(self.cast_text(expr))
        if kind is Kind.FLOAT:
            # Spark's TRUNC truncates dates only: a float is integral when it equals its FLOOR.
            return (
                f"CASE WHEN {expr} = FLOOR({expr}) AND ABS({expr}) < {FLOAT_EXACT_INTEGERS} "
                f"THEN CAST(CAST({expr} AS BIGINT) AS STRING) ELSE CAST({expr} AS STRING) END"
            )
        if kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_TZ):
            # A TIMESTAMP is an instant shown in the session's zone: shift it to UTC's wall clock first.
            utc = f"TO_UTC_TIMESTAMP({expr}, CURRENT_TIMEZONE())" if kind is Kind.TIMESTAMP_TZ else expr
            fixed = f"DATE_FORMAT({utc}, {self.literal(self.FRACTION_FORMAT)})"
            return self.trim_fraction(fixed) + " || 'Z'"
        if kind is Kind.DATE:
            return f"DATE_FORMAT({expr}, 'yyyy-MM-dd')"
        if kind is Kind.BINARY:
            return f"LOWER(HEX({expr}))"
        if kind is Kind.JSON:
            return f"TO_JSON({expr})"
        return self.cast_text(expr)

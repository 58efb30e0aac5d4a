"""PostgreSQL adapter: psycopg 3, a server-side cursor so a model of any size streams."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from segsync.config import PostgresConnection
from segsync.errors import SecretError, WarehouseError
from segsync.secrets import resolve
from segsync.warehouse.base import RowBatch, Warehouse
from segsync.warehouse.dialect import Kind, ModelColumn, PostgresDialect
from segsync.warehouse.policy import address

WHAT = "PostgreSQL credentials"
SESSION = {
    # The texts the server writes itself (floats, intervals, string literals) must not vary by session;
    # timestamps and dates are formatted explicitly (segsync.warehouse.dialect), whatever these say.
    # psycopg parses temporal values only in ISO DateStyle.
    "DateStyle": "ISO,YMD",
    "extra_float_digits": "1",
    "IntervalStyle": "postgres",
    "standard_conforming_strings": "on",
    "client_encoding": "UTF8",
}
TYPE_KINDS = {
    "int2": Kind.INTEGER,
    "int4": Kind.INTEGER,
    "int8": Kind.INTEGER,
    "oid": Kind.INTEGER,
    "float4": Kind.FLOAT,
    "float8": Kind.FLOAT,
    "timestamp": Kind.TIMESTAMP,
    "timestamptz": Kind.TIMESTAMP_TZ,
    "date": Kind.DATE,
    "time": Kind.TIME,
    "bool": Kind.BOOLEAN,
    "bytea": Kind.BINARY,
    "text": Kind.STRING,
    "varchar": Kind.STRING,
    "bpchar": Kind.STRING,
    "name": Kind.STRING,
    "json": Kind.JSON,
    "jsonb": Kind.JSON,
    "array": Kind.JSON,
    "composite": Kind.JSON,
}
CATEGORIES = {"A": "array", "C": "composite"}
"""Arrays and row types go out as JSON, whatever their element or field types."""
SCHEMA_PRIVILEGE = {"42501"}
"""insufficient_privilege: the role may not create the bookkeeping schema (or use it)."""


class PostgresWarehouse(Warehouse):
    """Streams a model through a named (server-side) cursor, ``fetchmany`` page by page (bounded memory)."""

    dialect = PostgresDialect()

    def __init__(self, connection: PostgresConnection) -> None:
        """Resolve the password and log in.

        Raises:
            SecretError: the credentials cannot be read or hold no password (their value is never quoted).
            WarehouseError: the server refused or did not answer (host, database, user and its reason).
        """
        self._who = f"PostgreSQL {connection.user}@{connection.host}:{connection.port}/{connection.database}"
        where = address(connection)
        password = _password(resolve(connection.credentials, WHAT))
        try:
            self._con = psycopg.connect(
                host=where.host,
                port=where.port,
                dbname=connection.database,
                user=connection.user,
                password=password,
                sslmode=connection.sslmode,
                connect_timeout=connection.connect_timeout,
                application_name="segsync",
                options=" ".join(f"-c {name}={value}" for name, value in SESSION.items()),
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise WarehouseError(f"cannot connect to {self._who}: {_reason(exc, password)}") from None

    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        # A named cursor lives in a transaction: the server keeps the result, the client holds one page.
        try:
            with self._con.transaction(), self._con.cursor(name=f"segsync_{uuid.uuid4().hex[:12]}") as cursor:
                cursor.itersize = batch_rows
                cursor.execute(sql)
                columns = [d.name for d in cursor.description]
                while rows := cursor.fetchmany(batch_rows):
                    yield RowBatch(columns, rows)
        except psycopg.Error as exc:
            raise WarehouseError(_reason(exc)) from None

    def describe(self, sql: str) -> list[ModelColumn]:
        try:
            with self._con.cursor() as cursor:
                cursor.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")
                description = cursor.description
                names = self._type_names({d.type_code for d in description})
        except psycopg.Error as exc:
            raise WarehouseError(_reason(exc)) from None
        return [_column(d.name, names.get(d.type_code, str(d.type_code)), d.scale) for d in description]

    def _type_names(self, oids: set[int]) -> dict[int, str]:
        """Type names by OID, from the catalog (domains and extension types have OIDs of their own)."""
        with self._con.cursor() as cursor:
            cursor.execute(
                "SELECT t.oid, CASE WHEN t.typtype = 'd' THEN b.typname ELSE t.typname END, t.typcategory "
                "FROM pg_type t LEFT JOIN pg_type b ON b.oid = t.typbasetype WHERE t.oid = ANY(%s)",
                (list(oids),),
            )
            return {oid: CATEGORIES.get(category, name) for oid, name, category in cursor.fetchall()}

    def execute(self, sql: str) -> None:
        self.execute_all([sql])

    def execute_all(self, statements: list[str]) -> None:
        # One transaction: a DROP and its CREATE, or an UPDATE and its INSERT, land together or not at all.
        try:
            with self._con.transaction(), self._con.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        except psycopg.Error as exc:
            raise WarehouseError(_reason(exc)) from None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            with self._con.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise WarehouseError(_reason(exc)) from None

    def insert_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        marks = ", ".join("%s" for _ in columns)
        try:
            with self._con.transaction(), self._con.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        except psycopg.Error as exc:
            raise WarehouseError(_reason(exc)) from None

    def ensure_schema(self, schema: str) -> None:
        # Unquoted, as every bookkeeping statement names it: PostgreSQL folds SEGSYNC to segsync. CREATE
        # SCHEMA IF NOT EXISTS checks the database's CREATE privilege even when the schema exists, so a
        # schema an owner made for segsync is looked up first.
        if self.query(f"SELECT 1 FROM pg_namespace WHERE nspname = {self.dialect.literal(schema.lower())}"):
            return
        try:
            with self._con.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        except pg_errors.InsufficientPrivilege as exc:
            database = self._con.info.dbname
            user = self._con.info.user
            raise WarehouseError(
                f"{self._who}: cannot create the bookkeeping schema {schema} ({_reason(exc)}); as the database "
                f'owner, run: GRANT CREATE ON DATABASE "{database}" TO "{user}"; or create it for segsync: '
                f'CREATE SCHEMA {schema} AUTHORIZATION "{user}"'
            ) from None
        except psycopg.Error as exc:
            raise WarehouseError(
                f"{self._who}: cannot create the bookkeeping schema {schema}: {_reason(exc)}"
            ) from None

    def close(self) -> None:
        self._con.close()


def _column(name: str, type_name: str, scale: int | None) -> ModelColumn:
    """A described column; NUMERIC(p, 0) is an integer, an unconstrained NUMERIC a decimal."""
    if type_name == "numeric":
        return ModelColumn(name, Kind.INTEGER if scale == 0 else Kind.DECIMAL, type_name)
    return ModelColumn(name, TYPE_KINDS.get(type_name, Kind.OTHER), type_name)


def _password(secret: str) -> str:
    """The password: a JSON secret's ``password``, or the secret's whole text."""
    try:
        fields = json.loads(secret)
    except ValueError:
        return secret
    if not isinstance(fields, dict):
        return secret
    if not fields.get("password"):
        raise SecretError(f"{WHAT}: the JSON secret has no 'password'")
    return str(fields["password"])


def _reason(exc: psycopg.Error, password: str | None = None) -> str:
    """The server's own words on one line (its message, and detail or hint when it gave one), never a secret."""
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None and diag.message_primary else str(exc)
    parts = [primary.strip()]
    for extra in (diag.message_detail, diag.message_hint) if diag is not None else ():
        if extra:
            parts.append(extra.strip())
    text = " ".join(" ".join(part.split()) for part in parts)
    return text.replace(password, "***") if password else text

"""Snowflake adapter: streams a model through the classic connector (4.x) with ``fetchmany``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import snowflake.connector
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from snowflake.connector.constants import FIELD_ID_TO_NAME
from snowflake.connector.errors import Error as ConnectorError

from segsync.config import SnowflakeConnection
from segsync.errors import SecretError, WarehouseError
from segsync.secrets import resolve
from segsync.warehouse.base import RowBatch, Warehouse
from segsync.warehouse.dialect import Kind, ModelColumn, SnowflakeDialect
from segsync.warehouse.policy import address

WHAT = "Snowflake credentials"
TYPE_KINDS = {
    "REAL": Kind.FLOAT,
    "TEXT": Kind.STRING,
    "DATE": Kind.DATE,
    "TIMESTAMP": Kind.TIMESTAMP,
    "TIMESTAMP_NTZ": Kind.TIMESTAMP,
    "TIMESTAMP_LTZ": Kind.TIMESTAMP_TZ,
    "TIMESTAMP_TZ": Kind.TIMESTAMP_TZ,
    "VARIANT": Kind.JSON,
    "OBJECT": Kind.JSON,
    "ARRAY": Kind.JSON,
    "MAP": Kind.JSON,
    "BINARY": Kind.BINARY,
    "TIME": Kind.TIME,
    "BOOLEAN": Kind.BOOLEAN,
}


class SnowflakeWarehouse(Warehouse):
    """Streams a model from Snowflake, one ``fetchmany`` page at a time (bounded memory)."""

    dialect = SnowflakeDialect()

    def __init__(self, connection: SnowflakeConnection) -> None:
        """Resolve the credentials and log in.

        Raises:
            SecretError: the credentials cannot be read or are not usable (their value is never quoted).
            WarehouseError: Snowflake refused the login (account, user and reason; no secret).
        """
        auth = _auth(resolve(connection.credentials, WHAT))
        # Only what is set: an explicit None would override the user's defaults in Snowflake.
        context = {
            "warehouse": connection.warehouse,
            "database": connection.database,
            "schema": connection.schema_,
            "role": connection.role,
        }
        if connection.host is not None:
            where = address(connection)
            context |= {"host": where.host, "port": where.port, "protocol": where.scheme}
        try:
            # Called through the module so fakesnow's patch of ``snowflake.connector.connect`` applies.
            self._con = snowflake.connector.connect(
                account=connection.account,
                user=connection.user,
                application="segsync",
                # A heartbeat thread would outlive the invocation when Lambda freezes the process.
                client_session_keep_alive=False,
                **{key: value for key, value in context.items() if value is not None},
                **auth,
            )
        except ConnectorError as exc:
            # The password is the one secret the connector holds as text, so the one it could echo.
            reason = exc.msg.replace(auth["password"], "***") if "password" in auth else exc.msg
            who = f"Snowflake account {connection.account} as user {connection.user}"
            raise WarehouseError(f"cannot connect to {who}: {reason}") from None

    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        cursor = self._con.cursor()
        try:
            cursor.execute(sql)
            columns = [column.name for column in cursor.description]
            # An explicit size: the cursor's arraysize defaults to 1, a network round trip per row.
            while rows := cursor.fetchmany(batch_rows):
                yield RowBatch(columns, rows)
        except ConnectorError as exc:
            # ``msg`` carries Snowflake's code, SQL state and query id, which support tickets ask for.
            raise WarehouseError(exc.msg) from None
        finally:
            cursor.close()

    def describe(self, sql: str) -> list[ModelColumn]:
        try:
            with self._con.cursor() as cursor:
                cursor.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")
                description = cursor.description
        except ConnectorError as exc:
            raise WarehouseError(exc.msg) from None
        return [_column(c.name, FIELD_ID_TO_NAME[c.type_code], c.scale) for c in description]

    def execute(self, sql: str) -> None:
        self.query(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            with self._con.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        except ConnectorError as exc:
            raise WarehouseError(exc.msg) from None

    def insert_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        # The connector's default paramstyle is pyformat; executemany binds the rows as one array.
        marks = ", ".join("%s" for _ in columns)
        try:
            with self._con.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        except ConnectorError as exc:
            raise WarehouseError(exc.msg) from None

    def ensure_schema(self, schema: str) -> None:
        # In Snowflake, creating a schema also makes it the session's current schema: models that
        # name their tables without a schema would then miss them, so the current one is restored.
        current = self.query("SELECT CURRENT_SCHEMA()")[0][0]
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if current:
            self.execute(f'USE SCHEMA "{current}"')

    def close(self) -> None:
        self._con.close()


def _column(name: str, type_name: str, scale: int | None) -> ModelColumn:
    """A described column; NUMBER with no scale is an integer (``NUMBER(38,0)``, Snowflake's INT)."""
    if type_name == "FIXED":
        kind = Kind.DECIMAL if scale else Kind.INTEGER
        return ModelColumn(name, kind, f"NUMBER(*,{scale or 0})")
    return ModelColumn(name, TYPE_KINDS.get(type_name, Kind.OTHER), type_name)


def _auth(secret: str) -> dict[str, Any]:
    """Turn the secret into the connector's login arguments; a key pair wins over a password.

    The secret is a JSON object with ``private_key`` (PEM, optionally encrypted with
    ``private_key_passphrase``) or ``password``; any other text is the password itself, so a
    plain password can be stored as is.
    """
    try:
        fields = json.loads(secret)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return {"password": secret}
    if fields.get("private_key"):
        return {"private_key": _der_key(fields["private_key"], fields.get("private_key_passphrase"))}
    if fields.get("password"):
        return {"password": fields["password"]}
    raise SecretError(f"{WHAT}: the JSON secret has neither 'private_key' nor 'password'")


def _der_key(pem: str, passphrase: str | None) -> bytes:
    """Decrypt a PEM key into the unencrypted DER PKCS#8 bytes the connector signs its JWT with.

    Decrypting here means a wrong passphrase is reported as a secret problem before any network call.
    """
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=passphrase.encode() if passphrase else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SecretError(
            f"{WHAT}: 'private_key' is not a PEM private key, or 'private_key_passphrase' does not open it"
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )

"""Databricks adapter: the SQL Statement Execution API of a SQL warehouse, over HTTPS with a token.

Chosen over databricks-sql-connector, which imports pandas and numpy (~130 MB): with them the planner's
layers would pass Lambda's 250 MB. The API runs a statement on the warehouse the connection's HTTP path
names, waits for it (server side, then by polling), and returns its result in chunks: small results
inline, a model's rows as ``EXTERNAL_LINKS`` (presigned URLs to JSON arrays, up to 100 GiB), fetched one
chunk at a time so memory stays bounded.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import requests

from segsync.config import DatabricksConnection
from segsync.errors import SecretError, WarehouseError
from segsync.secrets import resolve
from segsync.warehouse.base import RowBatch, Warehouse
from segsync.warehouse.dialect import DatabricksDialect, Kind, ModelColumn
from segsync.warehouse.policy import address

WHAT = "Databricks token"
SERVER_WAIT = "30s"
"""How long the API holds a request open for the statement to finish before it answers PENDING."""
STATEMENT_TIMEOUT_S = 840.0
FIRST_POLL_S = 0.1
MAX_POLL_S = 2.0
HTTP_TIMEOUT_S = (10.0, 120.0)
PARAMETERS_PER_STATEMENT = 250
TYPE_KINDS = {
    "BYTE": Kind.INTEGER,
    "SHORT": Kind.INTEGER,
    "INT": Kind.INTEGER,
    "LONG": Kind.INTEGER,
    "FLOAT": Kind.FLOAT,
    "DOUBLE": Kind.FLOAT,
    "TIMESTAMP": Kind.TIMESTAMP_TZ,
    "TIMESTAMP_NTZ": Kind.TIMESTAMP,
    "DATE": Kind.DATE,
    "BOOLEAN": Kind.BOOLEAN,
    "BINARY": Kind.BINARY,
    "STRING": Kind.STRING,
    "STRUCT": Kind.JSON,
    "ARRAY": Kind.JSON,
    "MAP": Kind.JSON,
    "VARIANT": Kind.JSON,
}
VALUE_READERS: dict[str, Callable[[str], Any]] = {
    "BYTE": int,
    "SHORT": int,
    "INT": int,
    "LONG": int,
    "FLOAT": float,
    "DOUBLE": float,
    "DECIMAL": Decimal,
    "BOOLEAN": lambda text: text == "true",
    "TIMESTAMP": datetime.fromisoformat,
    "TIMESTAMP_NTZ": datetime.fromisoformat,
    "DATE": date.fromisoformat,
    "BINARY": base64.b64decode,
    "STRUCT": json.loads,
    "ARRAY": json.loads,
    "MAP": json.loads,
    "VARIANT": json.loads,
}
"""The API writes every value as text (JSON_ARRAY format): each type read back as the mapper wants it."""
PARAMETER_TYPES: list[tuple[type, str]] = [(bool, "BOOLEAN"), (int, "BIGINT"), (float, "DOUBLE"),
                                           (datetime, "TIMESTAMP"), (str, "STRING")]  # fmt: skip


class DatabricksWarehouse(Warehouse):
    """Runs statements on a Databricks SQL warehouse through its Statement Execution API."""

    dialect = DatabricksDialect()

    def __init__(self, connection: DatabricksConnection) -> None:
        self._connection = connection
        self._warehouse_id = connection.http_path.rstrip("/").rsplit("/", 1)[-1]
        self._who = f"Databricks {connection.server_hostname} (SQL warehouse {self._warehouse_id})"
        self._base = address(connection).base
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {_token(resolve(connection.credentials, WHAT))}"
        self._session.headers["User-Agent"] = "segsync"

    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        statement = self._run(sql, disposition="EXTERNAL_LINKS")
        columns = statement["manifest"]["schema"].get("columns", [])
        names = [c["name"] for c in columns]
        readers = [VALUE_READERS.get(c.get("type_name", "")) for c in columns]
        pending: list[tuple[Any, ...]] = []
        for records in self._chunks(statement):
            pending.extend(tuple(_value(v, read) for v, read in zip(r, readers, strict=True)) for r in records)
            while len(pending) >= batch_rows:
                yield RowBatch(names, pending[:batch_rows])
                del pending[:batch_rows]
        if pending:
            yield RowBatch(names, pending)

    def describe(self, sql: str) -> list[ModelColumn]:
        statement = self._run(f"SELECT * FROM ({sql}) AS q LIMIT 0")
        return [_column(c) for c in statement["manifest"]["schema"].get("columns", [])]

    def execute(self, sql: str) -> None:
        self._run(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [row for batch in self.stream(sql, 10_000) for row in batch.rows]

    def insert_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        per_statement = max(1, PARAMETERS_PER_STATEMENT // len(columns))
        for start in range(0, len(rows), per_statement):
            values, parameters = [], []
            for row in rows[start : start + per_statement]:
                marks = []
                for value in row:
                    if value is None:
                        marks.append("NULL")
                        continue
                    name = f"p{len(parameters)}"
                    parameters.append({"name": name, "value": _parameter(value), "type": _parameter_type(value)})
                    marks.append(f":{name}")
                values.append(f"({', '.join(marks)})")
            self._run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(values)}", parameters=parameters)

    def ensure_schema(self, schema: str) -> None:
        # A schema made for segsync is used as it is: creating needs CREATE SCHEMA on the catalog.
        if self.query(f"SHOW SCHEMAS LIKE {self.dialect.literal(schema.lower())}"):
            return
        try:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        except WarehouseError as exc:
            if "PERMISSION_DENIED" not in str(exc) and "permission" not in str(exc).lower():
                raise
            catalog = self._connection.catalog or "<the connection's catalog>"
            raise WarehouseError(
                f"{exc}; a catalog owner must run: GRANT USE CATALOG, CREATE SCHEMA ON CATALOG {catalog} TO "
                f"`<segsync's user or service principal>`; or create the schema {schema} and grant it ALL PRIVILEGES"
            ) from None

    def close(self) -> None:
        self._session.close()

    def _run(
        self, sql: str, *, disposition: str = "INLINE", parameters: list[dict[str, str]] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "statement": sql,
            "warehouse_id": self._warehouse_id,
            "wait_timeout": SERVER_WAIT,
            "on_wait_timeout": "CONTINUE",
            "disposition": disposition,
            "format": "JSON_ARRAY",
        }
        if self._connection.catalog:
            body["catalog"] = self._connection.catalog
        if self._connection.schema_:
            body["schema"] = self._connection.schema_
        if parameters:
            body["parameters"] = parameters
        statement = self._request("POST", "/api/2.0/sql/statements", body)
        deadline = time.monotonic() + STATEMENT_TIMEOUT_S
        pause = FIRST_POLL_S
        while statement["status"]["state"] in ("PENDING", "RUNNING"):
            if time.monotonic() > deadline:
                self._request("POST", f"/api/2.0/sql/statements/{statement['statement_id']}/cancel", {})
                raise WarehouseError(f"{self._who}: statement still running after {STATEMENT_TIMEOUT_S:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, MAX_POLL_S)
            statement = self._request("GET", f"/api/2.0/sql/statements/{statement['statement_id']}")
        status = statement["status"]
        if status["state"] != "SUCCEEDED":
            error = status.get("error") or {}
            reason = " ".join(str(error.get("message") or status["state"]).split())
            raise WarehouseError(f"{self._who}: {error.get('error_code', status['state'])}: {reason}")
        return statement

    def _chunks(self, statement: dict[str, Any]) -> Iterator[list[list[str | None]]]:
        """Each result chunk's rows, one chunk in memory at a time (inline, or behind its presigned link)."""
        result = statement.get("result")
        statement_id = statement["statement_id"]
        while result:
            links = result.get("external_links")
            if links:
                for link in links:
                    # A presigned URL: the token must not go to the storage service with it.
                    response = requests.get(link["external_link"], timeout=HTTP_TIMEOUT_S)
                    if response.status_code != 200:
                        raise WarehouseError(
                            f"{self._who}: result chunk {link.get('chunk_index')}: HTTP {response.status_code}"
                        )
                    yield response.json()
                following = links[-1].get("next_chunk_index")
            else:
                yield result.get("data_array") or []
                following = result.get("next_chunk_index")
            if following is None:
                return
            result = self._request("GET", f"/api/2.0/sql/statements/{statement_id}/result/chunks/{following}")

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._session.request(method, self._base + path, json=body, timeout=HTTP_TIMEOUT_S)
        except requests.RequestException as exc:
            raise WarehouseError(f"cannot reach {self._who}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            try:
                error = response.json()
                reason = f"{error.get('error_code')}: {error.get('message')}"
            except ValueError:
                reason = response.text[:200]
            raise WarehouseError(f"{self._who}: HTTP {response.status_code} {' '.join(reason.split())}")
        return response.json()


def _token(secret: str) -> str:
    """The token: a JSON secret's ``token``, or the secret's whole text."""
    try:
        fields = json.loads(secret)
    except ValueError:
        return secret.strip()
    if not isinstance(fields, dict):
        return secret.strip()
    if not fields.get("token"):
        raise SecretError(f"{WHAT}: the JSON secret has no 'token'")
    return str(fields["token"])


def _column(column: dict[str, Any]) -> ModelColumn:
    type_name = column.get("type_name", "")
    if type_name == "DECIMAL":
        kind = Kind.DECIMAL if column.get("type_scale") else Kind.INTEGER
        return ModelColumn(column["name"], kind, column.get("type_text", type_name))
    return ModelColumn(column["name"], TYPE_KINDS.get(type_name, Kind.OTHER), column.get("type_text", type_name))


def _value(text: str | None, read: Callable[[str], Any] | None) -> Any:
    return None if text is None else (read(text) if read else text)


def _parameter(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _parameter_type(value: Any) -> str:
    for python_type, name in PARAMETER_TYPES:
        if isinstance(value, python_type):
            return name
    return "STRING"

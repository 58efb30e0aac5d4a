"""Amazon Redshift adapter: the Redshift Data API, signed with the planner's IAM role.

The Data API is HTTPS to an AWS endpoint: no VPC, no NAT, no driver and no password (a provisioned
cluster signs in as ``db_user`` with temporary IAM credentials, Serverless as the role itself). A
statement runs asynchronously: execute, poll until it finishes, then page through its result with
``NextToken``, one page in memory at a time. Each call is its own session, so statements that belong
together go in one ``BatchExecuteStatement``, which runs them as one transaction.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from segsync.config import RedshiftConnection
from segsync.errors import WarehouseError
from segsync.warehouse.base import RowBatch, Warehouse
from segsync.warehouse.dialect import Kind, ModelColumn, RedshiftDialect
from segsync.warehouse.policy import address

STATEMENT_TIMEOUT_S = 840.0
"""A statement still running after this is cancelled: the planner's invocation ends at 900 s."""
FIRST_POLL_S = 0.05
MAX_POLL_S = 1.0
PARAMETERS_PER_STATEMENT = 90
"""Rows are inserted with bound parameters, a few dozen per statement (never values pasted into SQL)."""
TYPE_KINDS = {
    "int2": Kind.INTEGER,
    "int4": Kind.INTEGER,
    "int8": Kind.INTEGER,
    "float4": Kind.FLOAT,
    "float8": Kind.FLOAT,
    "timestamp": Kind.TIMESTAMP,
    "timestamptz": Kind.TIMESTAMP_TZ,
    "date": Kind.DATE,
    "time": Kind.TIME,
    "bool": Kind.BOOLEAN,
    "varbyte": Kind.BINARY,
    "varchar": Kind.STRING,
    "bpchar": Kind.STRING,
    "text": Kind.STRING,
    "name": Kind.STRING,
    "super": Kind.JSON,
}
UTC_OFFSET = re.compile(r"([+-]\d\d)$")


def _timestamp(text: str) -> datetime:
    """Redshift writes ``2024-01-01 00:00:00.5+00``; Python wants the offset's minutes too."""
    return datetime.fromisoformat(UTC_OFFSET.sub(r"\1:00", text))


VALUE_READERS: dict[str, Callable[[str], Any]] = {
    "numeric": Decimal,
    "timestamp": datetime.fromisoformat,
    "timestamptz": _timestamp,
    "date": date.fromisoformat,
    "super": json.loads,
}
"""Values the Data API returns as text that the mapper wants typed (integers, floats, booleans come typed)."""


class RedshiftWarehouse(Warehouse):
    """Runs statements through the Redshift Data API (``redshift-data``) and pages through their results."""

    dialect = RedshiftDialect()

    def __init__(self, connection: RedshiftConnection) -> None:
        self._connection = connection
        target = connection.cluster_identifier or f"workgroup {connection.workgroup_name}"
        self._who = f"Redshift {target}/{connection.database}"
        where = address(connection)
        # Real AWS unless the connection names an endpoint: local mode's AWS_ENDPOINT_URL (moto) is not Redshift.
        self._client = boto3.client(
            "redshift-data",
            endpoint_url=where.base if where else None,
            region_name=connection.region,
            config=Config(ignore_configured_endpoint_urls=True, retries={"mode": "standard"}),
        )
        self._target: dict[str, str] = {"Database": connection.database}
        for key, value in (
            ("ClusterIdentifier", connection.cluster_identifier),
            ("WorkgroupName", connection.workgroup_name),
            ("DbUser", connection.db_user),
            ("SecretArn", connection.secret_arn),
        ):
            if value:
                self._target[key] = value

    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        statement = self._run(sql)
        if not statement.get("HasResultSet"):
            return
        columns: list[str] = []
        pending: list[tuple[Any, ...]] = []
        for metadata, records in self._pages(statement["Id"]):
            columns = [c["name"] for c in metadata]
            readers = [VALUE_READERS.get(c.get("typeName", "")) for c in metadata]
            pending.extend(tuple(_value(field, read) for field, read in zip(r, readers, strict=True)) for r in records)
            while len(pending) >= batch_rows:
                yield RowBatch(columns, pending[:batch_rows])
                del pending[:batch_rows]
        if pending:
            yield RowBatch(columns, pending)

    def describe(self, sql: str) -> list[ModelColumn]:
        statement = self._run(f"SELECT * FROM ({sql}) AS q LIMIT 0")
        metadata = self._call("get_statement_result", Id=statement["Id"])["ColumnMetadata"]
        return [_column(c) for c in metadata]

    def execute(self, sql: str) -> None:
        self._run(sql)

    def execute_all(self, statements: list[str]) -> None:
        if len(statements) == 1:
            self._run(statements[0])
            return
        response = self._call("batch_execute_statement", Sqls=statements, **self._target)
        self._wait(response["Id"])

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
                        marks.append("NULL")  # the Data API has no null parameter
                        continue
                    name = f"p{len(parameters)}"
                    parameters.append({"name": name, "value": _parameter(value)})
                    marks.append(f":{name}")
                values.append(f"({', '.join(marks)})")
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(values)}"
            self._run(sql, parameters)

    def ensure_schema(self, schema: str) -> None:
        # As on PostgreSQL: a schema an owner made for segsync is found without the database's CREATE privilege.
        if self.query(f"SELECT 1 FROM pg_namespace WHERE nspname = {self.dialect.literal(schema.lower())}"):
            return
        try:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        except WarehouseError as exc:
            if "permission denied" not in str(exc):
                raise
            user = self.query("SELECT CURRENT_USER")[0][0]
            raise WarehouseError(
                f"{exc}; as a superuser or the database owner, run: GRANT CREATE ON DATABASE "
                f'"{self._connection.database}" TO "{user}"; or create it for segsync: '
                f'CREATE SCHEMA {schema} AUTHORIZATION "{user}"'
            ) from None

    def close(self) -> None:
        """Nothing to release: every call is its own HTTPS request."""

    def _run(self, sql: str, parameters: list[dict[str, str]] | None = None) -> dict[str, Any]:
        extra = {"Parameters": parameters} if parameters else {}
        response = self._call("execute_statement", Sql=sql, **self._target, **extra)
        return self._wait(response["Id"])

    def _wait(self, statement_id: str) -> dict[str, Any]:
        """Poll until the statement ends; WarehouseError quotes Redshift when it failed."""
        deadline = time.monotonic() + STATEMENT_TIMEOUT_S
        pause = FIRST_POLL_S
        while True:
            statement = self._call("describe_statement", Id=statement_id)
            status = statement["Status"]
            if status == "FINISHED":
                return statement
            if status in ("FAILED", "ABORTED"):
                reason = " ".join(str(statement.get("Error") or status.lower()).split())
                raise WarehouseError(f"{self._who}: {reason}")
            if time.monotonic() > deadline:
                self._call("cancel_statement", Id=statement_id)
                raise WarehouseError(f"{self._who}: statement still running after {STATEMENT_TIMEOUT_S:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, MAX_POLL_S)

    def _pages(self, statement_id: str) -> Iterator[tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]]:
        token: str | None = None
        metadata: list[dict[str, Any]] = []
        while True:
            page = self._call("get_statement_result", Id=statement_id, **({"NextToken": token} if token else {}))
            metadata = page.get("ColumnMetadata") or metadata
            yield metadata, page["Records"]
            token = page.get("NextToken")
            if not token:
                return

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One Data API call; AWS's refusals (no such cluster, access denied) become one line naming the target."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise WarehouseError(f"{self._who}: {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as exc:
            raise WarehouseError(f"{self._who}: {exc}") from None


def _column(metadata: dict[str, Any]) -> ModelColumn:
    type_name = metadata.get("typeName", "")
    if type_name == "numeric":
        return ModelColumn(metadata["name"], Kind.DECIMAL if metadata.get("scale") else Kind.INTEGER, type_name)
    return ModelColumn(metadata["name"], TYPE_KINDS.get(type_name, Kind.OTHER), type_name)


def _value(field: dict[str, Any], read: Callable[[str], Any] | None) -> Any:
    """A Data API field as Python: typed where the API types it, else parsed by the column's type."""
    if field.get("isNull"):
        return None
    for key in ("longValue", "doubleValue", "booleanValue"):
        if key in field:
            return field[key]
    if "blobValue" in field:
        return bytes(field["blobValue"])
    text = field.get("stringValue")
    return read(text) if read and text is not None else text


def _parameter(value: Any) -> str:
    """A bound value as the Data API takes it: text, cast by Redshift to the column's type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)

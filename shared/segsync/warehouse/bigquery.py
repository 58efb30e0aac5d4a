"""Google BigQuery adapter: google-cloud-bigquery, signed in as a service account, results read page by page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_errors
from google.cloud import bigquery
from google.oauth2 import service_account

from segsync.config import BigQueryConnection
from segsync.errors import SecretError, WarehouseError
from segsync.secrets import resolve
from segsync.warehouse.base import RowBatch, Warehouse
from segsync.warehouse.dialect import BigQueryDialect, Kind, ModelColumn
from segsync.warehouse.policy import address

WHAT = "BigQuery service account key"
SCOPES = ("https://www.googleapis.com/auth/bigquery",)
ROWS_PER_INSERT = 500
TYPE_KINDS = {
    "INTEGER": Kind.INTEGER,
    "INT64": Kind.INTEGER,
    "NUMERIC": Kind.DECIMAL,
    "BIGNUMERIC": Kind.DECIMAL,
    "FLOAT": Kind.FLOAT,
    "FLOAT64": Kind.FLOAT,
    "TIMESTAMP": Kind.TIMESTAMP_TZ,
    "DATETIME": Kind.TIMESTAMP,
    "DATE": Kind.DATE,
    "TIME": Kind.TIME,
    "BOOLEAN": Kind.BOOLEAN,
    "BOOL": Kind.BOOLEAN,
    "BYTES": Kind.BINARY,
    "STRING": Kind.STRING,
    "JSON": Kind.JSON,
    "RECORD": Kind.JSON,
    "STRUCT": Kind.JSON,
}
PARAMETER_TYPES: list[tuple[type, str]] = [
    (bool, "BOOL"),
    (int, "INT64"),
    (float, "FLOAT64"),
    (Decimal, "BIGNUMERIC"),
    (datetime, "TIMESTAMP"),
    (str, "STRING"),
]
"""A bound value's BigQuery type, by its Python type (bool before int: a bool is an int)."""


class BigQueryWarehouse(Warehouse):
    """Runs query jobs in the connection's project and location; reads their results one page at a time."""

    dialect = BigQueryDialect()

    def __init__(self, connection: BigQueryConnection) -> None:
        """Read the service account's key and make the client (no request is made until the first query).

        Raises:
            SecretError: the secret is not a service account key (its value is never quoted).
        """
        self._connection = connection
        credentials = _credentials(resolve(connection.credentials, WHAT))
        self._who = f"BigQuery project {connection.project} as {credentials.service_account_email}"
        where = address(connection)
        options = ClientOptions(api_endpoint=where.base) if where else None
        self._client = bigquery.Client(
            project=connection.project, credentials=credentials, location=connection.location, client_options=options
        )

    def stream(self, sql: str, batch_rows: int) -> Iterator[RowBatch]:
        try:
            rows = self._client.query(sql).result(page_size=batch_rows)
            columns = [field.name for field in rows.schema]
            for page in rows.pages:
                yield RowBatch(columns, [tuple(row.values()) for row in page])
        except (google_errors.GoogleAPICallError, auth_errors.GoogleAuthError) as exc:
            raise WarehouseError(self._reason(exc)) from None

    def describe(self, sql: str) -> list[ModelColumn]:
        try:
            schema = self._client.query(f"SELECT * FROM ({sql}) AS q LIMIT 0").result().schema
        except (google_errors.GoogleAPICallError, auth_errors.GoogleAuthError) as exc:
            raise WarehouseError(self._reason(exc)) from None
        return [_column(field) for field in schema]

    def execute(self, sql: str) -> None:
        self.query(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return [tuple(row.values()) for row in self._client.query(sql).result()]
        except (google_errors.GoogleAPICallError, auth_errors.GoogleAuthError) as exc:
            raise WarehouseError(self._reason(exc)) from None

    def insert_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        # DML with query parameters, not the streaming API: streamed rows could not be deleted or updated
        # for about half an hour, and record_history replaces a run's row.
        for start in range(0, len(rows), ROWS_PER_INSERT):
            values, parameters = [], []
            for row in rows[start : start + ROWS_PER_INSERT]:
                marks = []
                for value in row:
                    if value is None:
                        marks.append("NULL")
                        continue
                    name = f"p{len(parameters)}"
                    parameters.append(bigquery.ScalarQueryParameter(name, _parameter_type(value), value))
                    marks.append(f"@{name}")
                values.append(f"({', '.join(marks)})")
            config = bigquery.QueryJobConfig(query_parameters=parameters)
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(values)}"
            try:
                self._client.query(sql, job_config=config).result()
            except (google_errors.GoogleAPICallError, auth_errors.GoogleAuthError) as exc:
                raise WarehouseError(self._reason(exc)) from None

    def ensure_schema(self, schema: str) -> None:
        dataset = bigquery.Dataset(f"{self._connection.project}.{schema}")
        dataset.location = self._connection.location
        try:
            # A dataset made for segsync is used as it is: creating one needs bigquery.datasets.create.
            self._client.get_dataset(dataset.reference)
            return
        except google_errors.NotFound:
            pass
        except (google_errors.GoogleAPICallError, auth_errors.GoogleAuthError) as exc:
            raise WarehouseError(self._reason(exc)) from None
        try:
            self._client.create_dataset(dataset, exists_ok=True)
        except google_errors.Forbidden as exc:
            raise WarehouseError(
                f"{self._reason(exc)}; grant it roles/bigquery.dataEditor on the project (it creates the dataset "
                f"{schema}), or create the dataset {schema} in {self._connection.location} and grant "
                "roles/bigquery.dataEditor there; it also needs roles/bigquery.jobUser on the project"
            ) from None
        except (google_errors.GoogleAPICallError, auth_errors.GoogleAuthError) as exc:
            raise WarehouseError(self._reason(exc)) from None

    def close(self) -> None:
        self._client.close()

    def _reason(self, exc: Exception) -> str:
        """One line: who asked, and what BigQuery (or Google's sign-in) answered."""
        message = exc.message if isinstance(exc, google_errors.GoogleAPICallError) else str(exc)
        return f"{self._who}: {' '.join(str(message).split())}"


def _credentials(secret: str) -> service_account.Credentials:
    try:
        info = json.loads(secret)
        return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    except (ValueError, TypeError, KeyError):
        raise SecretError(
            f"{WHAT}: not a service account's JSON key (type, client_email, private_key, token_uri)"
        ) from None


def _column(field: Any) -> ModelColumn:
    kind = Kind.JSON if field.mode == "REPEATED" else TYPE_KINDS.get(field.field_type, Kind.OTHER)
    if kind is Kind.DECIMAL and field.scale == 0:
        kind = Kind.INTEGER
    return ModelColumn(field.name, kind, field.field_type)


def _parameter_type(value: Any) -> str:
    for python_type, name in PARAMETER_TYPES:
        if isinstance(value, python_type):
            return name
    return "STRING"

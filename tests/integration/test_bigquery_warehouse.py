"""The BigQuery adapter against bqemulator, signed in as a service account through a loopback token endpoint.

See tests/bigquery_emulator.py; docs/warehouses.md says what only a real project proves.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from segsync.errors import SecretError, WarehouseError
from segsync.warehouse import connect
from segsync.warehouse.bigquery import BigQueryWarehouse

from .. import bigquery_emulator as bq


def test_a_model_streams_page_by_page_with_bigquery_types(bigquery_connection, bigquery_tokens):
    # Given a model of 25 rows
    sql = (
        "SELECT i AS order_id, CAST(i AS NUMERIC) / 4 AS total, "
        "TIMESTAMP_ADD(TIMESTAMP '2024-01-01 00:00:00+00', INTERVAL i DAY) AS placed_at "
        "FROM UNNEST(GENERATE_ARRAY(1, 25)) AS i ORDER BY i"
    )

    # When it is streamed 10 rows at a time
    with BigQueryWarehouse(bigquery_connection) as warehouse:
        batches = list(warehouse.stream(sql, 10))

    # Then the rows arrive a page at a time, typed, and the service account signed in for them
    assert [len(b.rows) for b in batches] == [10, 10, 5]
    assert batches[0].columns == ["order_id", "total", "placed_at"]
    assert batches[0].rows[1] == (2, Decimal("0.5"), dt.datetime(2024, 1, 3, tzinfo=dt.UTC))
    assert bigquery_tokens.grants[-1]["iss"] == bq.SERVICE_ACCOUNT


def test_a_key_google_refuses_names_the_project_and_account_in_one_line(
    bigquery_connection, bigquery_tokens, monkeypatch
):
    # Given a service account key that is not the account's (its signature does not verify)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_BIGQUERY_CREDENTIALS", bigquery_tokens.service_account(stranger))

    # When a query runs
    with connect(bigquery_connection) as warehouse, pytest.raises(WarehouseError) as raised:
        warehouse.query("SELECT 1")

    # Then one line names the project and the account, with Google's answer, and no key
    message = str(raised.value)
    assert message.startswith(f"BigQuery project {bq.PROJECT} as {bq.SERVICE_ACCOUNT}: ")
    assert "invalid_grant" in message and "PRIVATE KEY" not in message and "\n" not in message


def test_a_secret_that_is_not_a_service_account_key_says_so_without_quoting_it(bigquery_connection, monkeypatch):
    # Given credentials holding something else
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_BIGQUERY_CREDENTIALS", json.dumps({"token": "s3cr3t"}))

    # When the adapter is made, Then it says what it expected, and never the value
    with pytest.raises(SecretError) as raised:
        connect(bigquery_connection)
    assert str(raised.value).startswith("BigQuery service account key: not a service account's JSON key")
    assert "s3cr3t" not in str(raised.value)


def test_a_failing_query_quotes_bigquery(bigquery_connection):
    # Given a model reading a table that does not exist, When it is streamed
    with BigQueryWarehouse(bigquery_connection) as warehouse, pytest.raises(WarehouseError) as raised:
        list(warehouse.stream("SELECT * FROM MODELS.no_such_table", 10))

    # Then the error names the project and quotes BigQuery's message (which names the table)
    assert str(raised.value).startswith(f"BigQuery project {bq.PROJECT} as {bq.SERVICE_ACCOUNT}: ")
    assert "no_such_table" in str(raised.value)

"""The Snowflake adapter against fakesnow (Snowflake emulated on DuckDB), with its credentials.

fakesnow runs in patch mode: it replaces ``snowflake.connector.connect`` in process, so the adapter
runs its real code with no network. Credentials come from the environment or from Secrets Manager
under moto.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import boto3
import fakesnow
import pytest
import snowflake.connector
from aws_lambda_powertools.utilities import parameters
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws
from snowflake.connector.errors import DatabaseError

from segsync.config import SecretRef, SnowflakeConnection
from segsync.errors import SecretError, WarehouseError
from segsync.warehouse.snowflake import SnowflakeWarehouse

PASSWORD = "correct-horse-battery-staple"


def snowflake_connection(credentials: SecretRef) -> SnowflakeConnection:
    return SnowflakeConnection.model_validate(
        {
            "type": "snowflake",
            "account": "acme-xy12345",
            "user": "SEGSYNC",
            "warehouse": "REVERSE_ETL",
            "database": "ANALYTICS",
            "schema": "MARTS",
            "role": "SEGSYNC_READER",
            "credentials": credentials,
        }
    )


@pytest.fixture
def connects() -> Iterator[list[dict[str, Any]]]:
    """fakesnow in patch mode, recording the keyword arguments of every connect.

    The spy is nested inside fakesnow's patch (not set with monkeypatch) so both are undone in order.
    """
    calls: list[dict[str, Any]] = []
    with fakesnow.patch():
        fake_connect = snowflake.connector.connect

        def spy(**kwargs: Any) -> Any:
            calls.append(kwargs)
            return fake_connect(**kwargs)

        with mock.patch("snowflake.connector.connect", spy):
            yield calls


@pytest.fixture
def users_table(connects: list[dict[str, Any]]) -> None:
    """Ten users in ANALYTICS.MARTS.USERS, loaded with one INSERT ... SELECT (executemany is slow)."""
    with snowflake.connector.connect(
        account="acme-xy12345", user="ADMIN", password="admin", database="ANALYTICS", schema="MARTS"
    ) as seed:
        cursor = seed.cursor()
        cursor.execute(
            "create table users (id int, email varchar, spend number(10, 2), signed_up_at timestamp_ntz,"
            " active boolean, note varchar)"
        )
        cursor.execute(
            """
            insert into users
            select seq4(), 'user' || seq4() || '@example.com', seq4() * 1.25,
                   dateadd(day, seq4(), '2024-01-01 08:30:00'::timestamp_ntz), seq4() % 2 = 0, null
            from table(generator(rowcount => 10))
            """
        )
    connects.clear()


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> SecretRef:
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD", PASSWORD)
    return SecretRef(env="SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD")


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Secrets Manager under moto, with Powertools' secret cache emptied so no test sees another's value."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("secretsmanager")
    parameters.clear_caches()


def rsa_pem(passphrase: str | None = None) -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return key, pem.decode()


@pytest.mark.usefixtures("users_table")
def test_stream_yields_batches_with_snowflake_column_names_and_types(password_env: SecretRef) -> None:
    # Given ten users in Snowflake and a model with unquoted names and one quoted alias
    sql = 'select id, email as "emailAddress", spend, signed_up_at, active, note from users order by id'

    # When the model is streamed four rows at a time
    with SnowflakeWarehouse(snowflake_connection(password_env)) as warehouse:
        batches = list(warehouse.stream(sql, batch_rows=4))

    # Then the rows arrive in batches of 4, 4 and 2
    assert [len(batch.rows) for batch in batches] == [4, 4, 2]
    # And unquoted identifiers come back upper-cased, as Snowflake folds them; the quoted alias keeps its case
    assert batches[0].columns == ["ID", "emailAddress", "SPEND", "SIGNED_UP_AT", "ACTIVE", "NOTE"]
    # And the values keep their types, NULL included
    assert batches[0].rows[1] == (
        1,
        "user1@example.com",
        Decimal("1.25"),
        dt.datetime(2024, 1, 2, 8, 30),
        False,
        None,
    )
    assert [row[0] for batch in batches for row in batch.rows] == list(range(10))


@pytest.mark.usefixtures("users_table")
def test_a_failing_query_raises_warehouse_error_quoting_snowflake(password_env: SecretRef) -> None:
    # Given a model that reads a table that does not exist
    # When it is streamed
    with (
        SnowflakeWarehouse(snowflake_connection(password_env)) as warehouse,
        pytest.raises(WarehouseError) as raised,
    ):
        list(warehouse.stream("select * from no_such_table", batch_rows=4))

    # Then the error quotes the warehouse: its error code and the (upper-cased) table name
    assert "002003" in str(raised.value)
    assert "NO_SUCH_TABLE" in str(raised.value)


@pytest.mark.usefixtures("users_table")
def test_password_from_an_environment_variable_logs_in(connects: list[dict[str, Any]], password_env: SecretRef) -> None:
    # Given a password in an environment variable
    # When the adapter connects and runs a model
    with SnowflakeWarehouse(snowflake_connection(password_env)) as warehouse:
        rows = [row for batch in warehouse.stream("select count(*) from users", 100) for row in batch.rows]

    # Then it logged in with that password, in the configured context, as segsync, without a heartbeat
    assert rows == [(10,)]
    assert connects == [
        {
            "account": "acme-xy12345",
            "user": "SEGSYNC",
            "password": PASSWORD,
            "warehouse": "REVERSE_ETL",
            "database": "ANALYTICS",
            "schema": "MARTS",
            "role": "SEGSYNC_READER",
            "application": "segsync",
            "client_session_keep_alive": False,
        }
    ]


@pytest.mark.usefixtures("users_table")
def test_a_json_secret_from_secrets_manager_logs_in_with_its_password(
    connects: list[dict[str, Any]], secretsmanager: Any
) -> None:
    # Given a JSON secret holding the password in Secrets Manager
    secretsmanager.create_secret(Name="segsync/snowflake", SecretString=json.dumps({"password": PASSWORD}))

    # When the adapter connects and runs a model
    with SnowflakeWarehouse(snowflake_connection(SecretRef(secret="segsync/snowflake"))) as warehouse:
        rows = [row for batch in warehouse.stream("select count(*) from users", 100) for row in batch.rows]

    # Then it logged in with the password from the secret
    assert rows == [(10,)]
    assert connects[0]["password"] == PASSWORD
    assert "private_key" not in connects[0]


@pytest.mark.parametrize("passphrase", [None, "open sesame"], ids=["plain-key", "encrypted-key"])
def test_a_key_pair_secret_is_passed_to_the_connector_as_a_der_private_key(
    connects: list[dict[str, Any]], secretsmanager: Any, passphrase: str | None
) -> None:
    # Given a key-pair secret (PEM, possibly encrypted) in Secrets Manager, beside a password
    key, pem = rsa_pem(passphrase)
    secret = {"private_key": pem, "private_key_passphrase": passphrase, "password": "unused"}
    secretsmanager.create_secret(Name="segsync/snowflake-key", SecretString=json.dumps(secret))

    # When the adapter connects
    SnowflakeWarehouse(snowflake_connection(SecretRef(secret="segsync/snowflake-key"))).close()

    # Then the connector gets the same key as unencrypted DER bytes, and no password (key pair wins)
    sent = connects[0]
    assert "password" not in sent
    assert "private_key_passphrase" not in sent
    loaded = serialization.load_der_private_key(sent["private_key"], password=None)
    assert loaded.private_numbers() == key.private_numbers()


@pytest.mark.parametrize(
    "secret",
    [
        {"user": "SEGSYNC", "token": "s3cr3t-token"},
        {"private_key": "-----BEGIN PRIVATE KEY-----\ns3cr3t-token\n-----END PRIVATE KEY-----\n"},
    ],
    ids=["neither-key-nor-password", "not-a-pem"],
)
def test_unusable_credentials_raise_secret_error_without_their_value(
    monkeypatch: pytest.MonkeyPatch, secret: dict[str, str]
) -> None:
    # Given a JSON secret the adapter cannot log in with
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_SNOWFLAKE_CREDENTIALS", json.dumps(secret))
    connect = mock.Mock()
    monkeypatch.setattr(snowflake.connector, "connect", connect)

    # When the adapter is created
    with pytest.raises(SecretError) as raised:
        SnowflakeWarehouse(snowflake_connection(SecretRef(env="SEGSYNC_WAREHOUSE_SNOWFLAKE_CREDENTIALS")))

    # Then it says what is wrong without quoting the secret, and never tried to log in
    assert str(raised.value).startswith("Snowflake credentials: ")
    assert "s3cr3t-token" not in str(raised.value)
    connect.assert_not_called()


def test_a_failed_login_names_account_and_user_but_never_the_secret(
    monkeypatch: pytest.MonkeyPatch, password_env: SecretRef
) -> None:
    # Given a connector that refuses the login, and even echoes the password it was given
    def refuse(**kwargs: Any) -> None:
        raise DatabaseError(
            msg=f"Incorrect username or password was specified (tried {kwargs['password']!r}).", errno=250001
        )

    monkeypatch.setattr(snowflake.connector, "connect", refuse)

    # When the adapter connects
    with pytest.raises(WarehouseError) as raised:
        SnowflakeWarehouse(snowflake_connection(password_env))

    # Then the error names the account, the user and Snowflake's reason
    message = str(raised.value)
    assert message.startswith("cannot connect to Snowflake account acme-xy12345 as user SEGSYNC: ")
    assert "Incorrect username or password was specified" in message
    # And the password appears nowhere: not in the message, nor in a chained cause printed with it
    assert PASSWORD not in message
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__

"""The PostgreSQL adapter and segsync's bookkeeping SQL on a real PostgreSQL server.

The server is the session's (``postgres_server``): Debian's PostgreSQL started in a temporary
directory, its defaults a Los Angeles time zone and a day-first DateStyle. Each test has a database
of its own; segsync logs in as an unprivileged role with its password in the environment.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import psycopg
import pytest

from segsync.config import PostgresConnection, UserSync
from segsync.errors import SecretError, WarehouseError
from segsync.state import INTERNAL_COLUMNS, WarehouseState
from segsync.warehouse import connect
from segsync.warehouse.postgres import PostgresWarehouse
from tests.state_runs import run_through

from .. import postgres_server as pg

DESTINATION = "https://api.segment.io (env SEGMENT_WRITE_KEY)"
CUSTOMERS = 1_000


def _seed(server: pg.PostgresServer, connection: PostgresConnection, sql: str) -> None:
    with psycopg.connect(server.admin_dsn(connection.database), autocommit=True) as admin:
        admin.execute(sql)


@pytest.fixture
def customers(postgres_server, postgres_connection) -> PostgresConnection:
    """1,000 customers (text key, NUMERIC, TIMESTAMPTZ) in public.customers, readable by segsync."""
    _seed(
        postgres_server,
        postgres_connection,
        "CREATE TABLE customers AS SELECT 'cus_' || LPAD(i::text, 6, '0') AS customer_id, "
        "'c' || i || '@example.com' AS email, (i * 7 % 1000)::NUMERIC(12, 2) / 4 AS spend, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '1 hour' AS signed_up_at "
        f"FROM generate_series(1, {CUSTOMERS}) AS i; GRANT SELECT, UPDATE ON customers TO segsync",
    )
    return postgres_connection


def _sync() -> UserSync:
    return UserSync.model_validate(
        {"name": "customers", "object": "user", "source": "w", "destination": "s",
         "model": "SELECT * FROM customers", "key": "customer_id",
         "traits": {"email": "email", "spend": "spend", "signed_up_at": "signed_up_at"}}
    )  # fmt: skip


def test_stream_pages_a_server_side_cursor_with_postgres_types(customers):
    # Given a model over the customers table
    sql = 'SELECT customer_id, spend, signed_up_at, email AS "emailAddress" FROM customers ORDER BY customer_id'

    # When it is streamed 300 rows at a time
    with PostgresWarehouse(customers) as warehouse:
        batches = iter(warehouse.stream(sql, batch_rows=300))
        first = next(batches)
        # Then, while the rows stream, the server holds them in a named cursor of segsync's
        open_cursors = warehouse.query("SELECT name FROM pg_cursors")
        rest = list(batches)

    assert [len(b.rows) for b in [first, *rest]] == [300, 300, 300, 100]
    assert [name.startswith("segsync_") for (name,) in open_cursors] == [True]
    # And names keep PostgreSQL's case (unquoted: lower case; quoted: as written), values their types
    assert first.columns == ["customer_id", "spend", "signed_up_at", "emailAddress"]
    assert first.rows[0] == (
        "cus_000001",
        Decimal("1.75"),
        dt.datetime(2024, 1, 1, 1, tzinfo=dt.UTC),
        "c1@example.com",
    )


def test_diff_commit_and_a_one_percent_change_in_the_segsync_schema(customers, postgres_server):
    # Given the bookkeeping schema, created by segsync in a database where it may create schemas
    with PostgresWarehouse(customers) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        state.ensure()
        sync = _sync()

        # When the first run diffs and commits, Then every customer is new
        first, sent, committed = run_through(state, sync, DESTINATION, "run-1")
        assert (first.source_rows, first.new, first.changed) == (CUSTOMERS, CUSTOMERS, 0)
        assert len(sent) == committed == CUSTOMERS

        # When nothing changed, Then the next diff finds nothing to send
        again, sent, _ = run_through(state, sync, DESTINATION, "run-2")
        assert (again.new, again.changed, again.unchanged, sent) == (0, 0, CUSTOMERS, [])

        # When 1% of the customers change a mapped column
        warehouse.execute("UPDATE customers SET spend = spend + 1 WHERE right(customer_id, 2) = '00'")

        # Then exactly those go out, carrying their new values
        changed, rows, _ = run_through(state, sync, DESTINATION, "run-3")
        assert (changed.changed, changed.unchanged) == (10, 990)
        assert sorted(row[INTERNAL_COLUMNS] for row in rows) == [f"cus_{i:06d}" for i in range(100, 1001, 100)]

    # And the state lives in PostgreSQL's segsync schema (SEGSYNC, folded as PostgreSQL folds it)
    with psycopg.connect(postgres_server.admin_dsn(customers.database)) as admin:
        tables = admin.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segsync' ORDER BY 1"
        ).fetchall()
        in_state = admin.execute("SELECT COUNT(*) FROM SEGSYNC.SYNC_STATE").fetchone()
    assert [t for (t,) in tables] == [
        "rejected_records", "run_fence", "schema_version", "sync_runs", "sync_state"
    ]  # fmt: skip
    assert in_state == (CUSTOMERS,)


def test_history_and_rejected_records_are_queryable(customers):
    # Given a committed run with one rejected record
    with PostgresWarehouse(customers) as warehouse:
        state = WarehouseState(warehouse, "SEGSYNC")
        state.ensure()
        sync = _sync()
        rejected = [{"row_key": "cus_000007", "field": "userId", "reason": "empty"}]
        _, _, committed = run_through(state, sync, DESTINATION, "run-1", rejected)
        assert committed == CUSTOMERS - 1
        state.record_history({"sync": "customers", "run_id": "run-1", "status": "committed", "committed": 999})

        # When an analyst reads them back
        history = state.history("customers")
        rejected = state.rejected("customers")
        in_state = warehouse.query("SELECT ROW_KEY FROM SEGSYNC.SYNC_STATE WHERE ROW_KEY = 'cus_000007'")

    # Then the run and the rejection are there, and the rejected key stayed out of state
    assert [(h["run_id"], h["status"], h["committed"]) for h in history] == [("run-1", "committed", 999)]
    assert [(r["row_key"], r["field"]) for r in rejected] == [("cus_000007", "userId")]
    assert in_state == []


def test_a_role_that_may_not_create_the_schema_is_told_the_grant_it_needs(customers, postgres_server):
    # Given a database where segsync may read the model but not create schemas
    with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
        admin.execute(f'REVOKE CREATE ON DATABASE "{customers.database}" FROM segsync')

    # When segsync first creates its bookkeeping schema
    with PostgresWarehouse(customers) as warehouse, pytest.raises(WarehouseError) as raised:
        WarehouseState(warehouse, "SEGSYNC").ensure()

    # Then one line names the connection, quotes PostgreSQL, and gives the exact grant
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"PostgreSQL segsync@127.0.0.1:{postgres_server.port}/{customers.database}: ")
    assert "permission denied for database" in message
    assert f'GRANT CREATE ON DATABASE "{customers.database}" TO "segsync"' in message


def test_a_schema_an_owner_created_for_segsync_needs_no_create_on_the_database(customers, postgres_server):
    # Given the fix the error above suggests: no CREATE on the database, the schema made for segsync
    with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
        admin.execute(f'REVOKE CREATE ON DATABASE "{customers.database}" FROM segsync')
    with psycopg.connect(postgres_server.admin_dsn(customers.database), autocommit=True) as admin:
        admin.execute('CREATE SCHEMA SEGSYNC AUTHORIZATION "segsync"')

    # When segsync ensures its bookkeeping schema, Then its tables are created there
    with PostgresWarehouse(customers) as warehouse:
        WarehouseState(warehouse, "SEGSYNC").ensure()
        assert warehouse.query("SELECT COUNT(*) FROM SEGSYNC.SCHEMA_VERSION") == [(1,)]


def test_a_wrong_password_names_the_connection_and_never_the_password(postgres_connection, monkeypatch):
    # Given credentials holding a wrong password
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_POSTGRES_CREDENTIALS", json.dumps({"password": "not-the-password"}))

    # When segsync connects
    with pytest.raises(WarehouseError) as raised:
        connect(postgres_connection)

    # Then the error names the server, database and user, with PostgreSQL's answer, and no password
    message = str(raised.value)
    assert message.startswith(f"cannot connect to PostgreSQL segsync@127.0.0.1:{postgres_connection.port}/")
    assert 'password authentication failed for user "segsync"' in message
    assert "not-the-password" not in message and raised.value.__cause__ is None


def test_a_wrong_host_says_which_connection_could_not_be_reached(postgres_connection):
    # Given a port nothing listens on
    unreachable = postgres_connection.model_copy(update={"port": 1, "connect_timeout": 2})

    # When segsync connects, Then one line says where it tried and what failed
    with pytest.raises(WarehouseError) as raised:
        connect(unreachable)
    message = str(raised.value)
    assert message.startswith(f"cannot connect to PostgreSQL segsync@127.0.0.1:1/{postgres_connection.database}: ")
    assert "refused" in message and "\n" not in message


def test_a_wrong_database_quotes_the_server(postgres_connection):
    # Given a database that does not exist
    missing = postgres_connection.model_copy(update={"database": "no_such_database"})

    # When segsync connects, Then the server's answer names it
    with pytest.raises(WarehouseError, match='database "no_such_database" does not exist'):
        connect(missing)


def test_credentials_without_a_password_are_a_secret_error(postgres_connection, monkeypatch):
    # Given a JSON secret with no password in it
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_POSTGRES_CREDENTIALS", json.dumps({"user": "segsync", "token": "s3cr3t"}))

    # When segsync connects, Then it says what is missing, without quoting the secret
    with pytest.raises(SecretError) as raised:
        connect(postgres_connection)
    assert str(raised.value) == "PostgreSQL credentials: the JSON secret has no 'password'"


def test_a_failing_model_quotes_postgres_in_one_line(customers):
    # Given a model reading a table that does not exist, When it is streamed
    with PostgresWarehouse(customers) as warehouse, pytest.raises(WarehouseError) as raised:
        list(warehouse.stream("SELECT * FROM no_such_table", 10))

    # Then PostgreSQL's words are in the error
    assert str(raised.value) == 'relation "no_such_table" does not exist'

"""One text per key, whatever its type, in every warehouse: state, chunks, userIds, rejections, commit.

A table of key types per warehouse, each on the most real engine that runs here (a DuckDB file in a time
zone far from UTC, Snowflake's dialect through the real connector and fakesnow, a real PostgreSQL server,
Redshift's SQL over a loopback Data API on it, bqemulator, a local Spark). Each case checks the key text
the warehouse writes. One case of each text shape then runs through the planner, the sender (to a
loopback endpoint) and the commit: the delivered user's userId and state key are that text; a row the
sender rejects is recorded under that text, stays out of state, and is due again on the next run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fakesnow
import pytest
import snowflake.connector

from segsync.chunks import decode
from segsync.config import DuckDBConnection, RedshiftConnection, SegmentConnection, SnowflakeConnection, parse_sync
from segsync.endpoints import SenderPolicy
from segsync.lifecycle import RunLifecycle
from segsync.local.capture import CaptureServer, read_captured
from segsync.planner import Planner
from segsync.queue import ChunkQueue
from segsync.sender import Sender
from segsync.state import WarehouseState, destination_id
from segsync.store import RunStore
from segsync.warehouse import Warehouse, redshift
from segsync.warehouse.bigquery import BigQueryWarehouse
from segsync.warehouse.databricks import DatabricksWarehouse
from segsync.warehouse.duckdb import DuckDBWarehouse
from segsync.warehouse.postgres import PostgresWarehouse
from segsync.warehouse.snowflake import SnowflakeWarehouse

from ..redshift_data_api import DataApi


@dataclass(frozen=True)
class Case:
    type: str
    value: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.type} {self.value}"


DUCKDB_CASES = [
    Case("INTEGER", "7", "7"),
    Case("BIGINT", "-9223372036854775808", "-9223372036854775808"),
    Case("HUGEINT", "170141183460469231731687303715884105727", "170141183460469231731687303715884105727"),
    Case("UBIGINT", "18446744073709551615", "18446744073709551615"),
    Case("DECIMAL(18,0)", "7", "7"),
    Case("DECIMAL(18,2)", "7.50", "7.5"),
    Case("DECIMAL(18,2)", "7.00", "7"),
    Case("DECIMAL(38,10)", "-0.0000000001", "-0.0000000001"),
    Case("DOUBLE", "7.0", "7"),
    Case("DOUBLE", "0.1", "0.1"),
    Case("REAL", "2.5", "2.5"),
    Case("TIMESTAMP", "'2024-01-01 00:00:00'", "2024-01-01T00:00:00Z"),
    Case("TIMESTAMP", "'2024-01-01 00:00:00.120'", "2024-01-01T00:00:00.12Z"),
    Case("TIMESTAMP_S", "'2024-01-01 00:00:01'", "2024-01-01T00:00:01Z"),
    Case("TIMESTAMP_MS", "'2024-01-01 00:00:01.5'", "2024-01-01T00:00:01.5Z"),
    Case("TIMESTAMP_NS", "'2024-01-01 00:00:00.000000001'", "2024-01-01T00:00:00.000000001Z"),
    Case("TIMESTAMPTZ", "'2024-01-01 00:00:00.5+02'", "2023-12-31T22:00:00.5Z"),
    Case("DATE", "'2024-01-02'", "2024-01-02"),
    Case("TIME", "'12:00:01.5'", "12:00:01.5"),
    Case("BOOLEAN", "true", "true"),
    Case("BLOB", "'\\xAB\\x01'", "ab01"),
    Case("UUID", "'4276F37D-5080-44D2-B7D4-4FEE89066901'", "4276f37d-5080-44d2-b7d4-4fee89066901"),
    Case("INTERVAL", "INTERVAL 1 DAY", "1 day"),
    Case("VARCHAR", "'k 1'", "k 1"),
    Case("INTEGER[]", "[1, 2]", "[1,2]"),
    Case("STRUCT(a INTEGER, b VARCHAR)", "{'a': 1, 'b': 'x'}", '{"a":1,"b":"x"}'),
    Case("MAP(VARCHAR, INTEGER)", "MAP {'a': 1}", '{"a":1}'),
    Case("ENUM('x', 'y')", "'y'", "y"),
]
# Snowflake's own types, as fakesnow emulates them. Not here: TIME (fakesnow cannot format one), and
# nanosecond timestamps (fakesnow keeps microseconds); the dialect's SQL for both is Snowflake's documented
# TO_VARCHAR formats, which only a real account proves.
SNOWFLAKE_CASES = [
    Case("NUMBER(38,0)", "7", "7"),
    Case("NUMBER(18,2)", "7.50", "7.5"),
    Case("NUMBER(18,2)", "7.00", "7"),
    Case("FLOAT", "7.0", "7"),
    Case("FLOAT", "0.1", "0.1"),
    Case("TIMESTAMP_NTZ", "'2024-01-01 00:00:00'", "2024-01-01T00:00:00Z"),
    Case("TIMESTAMP_NTZ", "'2024-01-01 00:00:00.120'", "2024-01-01T00:00:00.12Z"),
    Case("TIMESTAMP_TZ", "'2024-01-01 00:00:00.5 +02:00'", "2023-12-31T22:00:00.5Z"),
    Case("TIMESTAMP_LTZ", "'2024-01-01 00:00:00.5'", "2024-01-01T00:00:00.5Z"),
    Case("DATE", "'2024-01-02'", "2024-01-02"),
    Case("BINARY", "TO_BINARY('AB01', 'HEX')", "ab01"),
    Case("BOOLEAN", "TRUE", "true"),
    Case("VARCHAR", "'k 1'", "k 1"),
    Case("OBJECT", "OBJECT_CONSTRUCT('a', 1)", '{"a":1}'),
]
# PostgreSQL's types, on a real server whose default time zone is Los Angeles, DateStyle day-first and
# extra_float_digits 0: none of them may reach a key text.
POSTGRES_CASES = [
    Case("INTEGER", "7", "7"),
    Case("SMALLINT", "-3", "-3"),
    Case("BIGINT", "-9223372036854775808", "-9223372036854775808"),
    Case("NUMERIC(18,0)", "7", "7"),
    Case("NUMERIC(18,2)", "7.50", "7.5"),
    Case("NUMERIC(18,2)", "7.00", "7"),
    Case("NUMERIC", "10", "10"),
    Case("NUMERIC", "7.50", "7.5"),
    Case("NUMERIC(38,10)", "-0.0000000001", "-0.0000000001"),
    Case("DOUBLE PRECISION", "7.0", "7"),
    Case("DOUBLE PRECISION", "0.1::float8 + 0.2::float8", "0.30000000000000004"),
    Case("REAL", "2.5", "2.5"),
    Case("TIMESTAMP", "'2024-01-01 00:00:00'", "2024-01-01T00:00:00Z"),
    Case("TIMESTAMP", "'2024-01-01 00:00:00.120'", "2024-01-01T00:00:00.12Z"),
    Case("TIMESTAMP(6)", "'2024-01-01 00:00:00.000001'", "2024-01-01T00:00:00.000001Z"),
    Case("TIMESTAMPTZ", "'2024-01-01 00:00:00.5+02'", "2023-12-31T22:00:00.5Z"),
    Case("DATE", "'2024-01-02'", "2024-01-02"),
    Case("TIME", "'12:00:01.5'", "12:00:01.5"),
    Case("BOOLEAN", "true", "true"),
    Case("BYTEA", "'\\xAB01'", "ab01"),
    Case("UUID", "'4276F37D-5080-44D2-B7D4-4FEE89066901'", "4276f37d-5080-44d2-b7d4-4fee89066901"),
    Case("INTERVAL", "INTERVAL '1 day'", "1 day"),
    Case("TEXT", "'k 1'", "k 1"),
    Case("VARCHAR(10)", "'k 2'", "k 2"),
    Case("INTEGER[]", "ARRAY[1, 2]", "[1,2]"),
    Case("JSONB", """'{"b": "x y", "a": [1, 2]}'""", '{"a":[1,2],"b":"x y"}'),
    Case("JSON", """'{"a":  1}'""", '{"a":1}'),
]

# Redshift's SQL (the Redshift dialect) through the adapter, the Data API's protocol (a loopback endpoint)
# and the real PostgreSQL server, the closest engine that runs here. Not here: types PostgreSQL spells
# differently (SUPER and JSON_SERIALIZE, VARBYTE and TO_HEX); an unconstrained NUMERIC (Redshift makes it
# NUMERIC(18,0)). Only a real cluster proves those.
REDSHIFT_CASES = [
    c
    for c in POSTGRES_CASES
    if c.type in ("INTEGER", "SMALLINT", "BIGINT", "NUMERIC(18,0)", "NUMERIC(18,2)", "NUMERIC(38,10)",
                  "DOUBLE PRECISION", "REAL", "TIMESTAMP", "TIMESTAMPTZ", "DATE", "BOOLEAN", "VARCHAR(10)")
    and c.text != "0.30000000000000004"
] + [
    # Each Data API statement is a session of its own, at Redshift's default extra_float_digits (0): a
    # non-integral float's text has 15 significant digits, not the shortest exact one.
    Case("DOUBLE PRECISION", "0.1::float8 + 0.2::float8", "0.3"),
]  # fmt: skip

# BigQuery's types, through google-cloud-bigquery and bqemulator (BigQuery's REST API on DuckDB): the
# emulator runs the dialect's SQL as DuckDB does once sqlglot has translated it, so it proves the SQL
# is valid BigQuery and its texts canonical there; BigQuery's own formatting (CAST of a FLOAT64, a
# NUMERIC's digits, FORMAT_TIMESTAMP's %E6S, BIGNUMERIC's 38 decimals, the order of a JSON object's
# keys) only a real project proves.
BIGQUERY_CASES = [
    Case("INT64", "7", "7"),
    Case("INT64", "-9223372036854775808", "-9223372036854775808"),
    Case("NUMERIC", "7.50", "7.5"),
    Case("NUMERIC", "10", "10"),
    Case("NUMERIC", "-0.25", "-0.25"),
    Case("FLOAT64", "7.0", "7"),
    Case("FLOAT64", "0.1", "0.1"),
    Case("TIMESTAMP", "'2024-01-01 00:00:00.5+02'", "2023-12-31T22:00:00.5Z"),
    Case("TIMESTAMP", "'2024-01-01 00:00:00'", "2024-01-01T00:00:00Z"),
    Case("DATETIME", "'2024-01-01 00:00:00.120'", "2024-01-01T00:00:00.12Z"),
    Case("DATE", "'2024-01-02'", "2024-01-02"),
    Case("BOOL", "TRUE", "true"),
    Case("BYTES", "FROM_HEX('ab01')", "ab01"),
    Case("STRING", "'k 1'", "k 1"),
    Case("STRING", "'back\\\\slash'", "back\\slash"),
    Case("JSON", 'JSON \'{"a": "x y", "b": [1, 2]}\'', '{"a":"x y","b":[1,2]}'),
]
# Databricks SQL's types, through the adapter and a loopback copy of the Statement Execution API, on a
# local Spark whose session time zone is Los Angeles. Spark without Delta Lake cannot MERGE or DELETE,
# so only the texts run here, not the round trip: that, and Databricks' own runtime, a real workspace
# proves.
DATABRICKS_CASES = [
    Case("INT", "7", "7"),
    Case("BIGINT", "-9223372036854775808", "-9223372036854775808"),
    Case("DECIMAL(18,0)", "7", "7"),
    Case("DECIMAL(18,2)", "7.50", "7.5"),
    Case("DECIMAL(18,2)", "7.00", "7"),
    Case("DECIMAL(38,10)", "-0.0000000001", "-0.0000000001"),
    Case("DOUBLE", "7.0", "7"),
    Case("DOUBLE", "0.1", "0.1"),
    Case("TIMESTAMP", "'2024-01-01 00:00:00.5+02:00'", "2023-12-31T22:00:00.5Z"),
    Case("TIMESTAMP_NTZ", "'2024-01-01 00:00:00.120'", "2024-01-01T00:00:00.12Z"),
    Case("DATE", "'2024-01-02'", "2024-01-02"),
    Case("BOOLEAN", "true", "true"),
    Case("BINARY", "X'AB01'", "ab01"),
    Case("STRING", "'k 1'", "k 1"),
    Case("ARRAY<INT>", "array(1, 2)", "[1,2]"),
    Case("STRUCT<a: INT, b: STRING>", "named_struct('a', 1, 'b', 'x')", '{"a":1,"b":"x"}'),
]
KEYS_TABLE = {"bigquery": "MODELS.KEYS"}
"""Where each warehouse keeps the test's table (BigQuery names every table with its dataset)."""


@pytest.fixture
def duckdb_warehouse(tmp_path) -> Iterator[Warehouse]:
    """A DuckDB file whose session runs in Los Angeles time: key texts must not notice."""
    import duckdb

    path = tmp_path / "keys.duckdb"
    duckdb.connect(str(path)).close()
    with DuckDBWarehouse(DuckDBConnection(type="duckdb", path=str(path))) as warehouse:
        warehouse.execute("SET TimeZone = 'America/Los_Angeles'")
        yield warehouse


@pytest.fixture
def snowflake_warehouse(monkeypatch) -> Iterator[Warehouse]:
    """A Snowflake session (fakesnow, patch mode) on DB.S."""
    monkeypatch.setenv("SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD", "fakesnow-accepts-any")
    with fakesnow.patch():
        snowflake.connector.connect(account="a", user="ADMIN", password="x", database="DB", schema="S").close()
        connection = SnowflakeConnection.model_validate(
            {"type": "snowflake", "account": "a", "user": "SEGSYNC", "database": "DB", "schema": "S",
             "credentials": {"env": "SEGSYNC_WAREHOUSE_SNOWFLAKE_PASSWORD"}}
        )  # fmt: skip
        with SnowflakeWarehouse(connection) as warehouse:
            yield warehouse


@pytest.fixture
def postgres_warehouse(postgres_connection) -> Iterator[Warehouse]:
    """A PostgreSQL database of its own on the session's real server."""
    with PostgresWarehouse(postgres_connection) as warehouse:
        yield warehouse


@pytest.fixture
def redshift_warehouse(postgres_server, postgres_connection, monkeypatch) -> Iterator[Warehouse]:
    """The Redshift adapter on the Data API's protocol, its statements run by the real PostgreSQL server."""
    monkeypatch.setattr(redshift, "FIRST_POLL_S", 0.001)
    with DataApi(postgres_server) as api:
        connection = RedshiftConnection(
            type="redshift", cluster_identifier="analytics", database=postgres_connection.database,
            db_user="segsync", region="us-east-1", endpoint_url=api.url,
        )  # fmt: skip
        with redshift.RedshiftWarehouse(connection) as warehouse:
            yield warehouse


@pytest.fixture
def bigquery_warehouse(bigquery_connection) -> Iterator[Warehouse]:
    with BigQueryWarehouse(bigquery_connection) as warehouse:
        yield warehouse


def _keys(warehouse: Warehouse) -> str:
    return KEYS_TABLE.get(warehouse.dialect.name, "KEYS")


@pytest.fixture
def databricks_warehouse(databricks_connection) -> Iterator[Warehouse]:
    with DatabricksWarehouse(databricks_connection) as warehouse:
        yield warehouse


def _table(warehouse: Warehouse, case: Case) -> None:
    """One user row keyed by the case's value: an email, and no user id for the Track sync to need."""
    d = warehouse.dialect
    select = (
        f"SELECT CAST({case.value} AS {case.type}) AS K, 'a@example.com' AS EMAIL, {d.cast_text('NULL')} AS USER_ID"
    )
    if d.name == "databricks":
        # Spark without Delta Lake cannot REPLACE a table: the test's own table is dropped first.
        warehouse.execute_all(
            [f"DROP TABLE IF EXISTS {_keys(warehouse)}", f"CREATE TABLE {_keys(warehouse)} AS {select}"]
        )
        return
    warehouse.execute_all(d.create_table_as(_keys(warehouse), select))


USERS = {"name": "keyed-users", "object": "user", "key": "k", "traits": {"email": "email"}}
EVENTS = {"name": "keyed-events", "object": "track", "key": "k", "event": {"value": "Keyed"}, "user_id": "user_id"}


def _sync(fields: dict[str, Any], table: str = "KEYS"):
    return parse_sync({"source": "w", "destination": "segment", "model": f"SELECT * FROM {table}", **fields})


def _key_text(warehouse: Warehouse, case: Case) -> str:
    _table(warehouse, case)
    state = WarehouseState(warehouse, "SEGSYNC")
    sync = _sync(USERS, _keys(warehouse))
    rows = [row for batch in warehouse.stream(state.keyed(sync, state.model_columns(sync.sql), sync.sql), 10)
            for row in batch.rows]  # fmt: skip
    assert len(rows) == 1 and rows[0][1] == 1
    return rows[0][0]


@pytest.mark.parametrize("case", DUCKDB_CASES, ids=lambda c: c.id)
def test_duckdb_writes_each_key_type_as_its_canonical_text(duckdb_warehouse, case):
    # Given a key of this type, When the warehouse writes its text, Then it is the canonical one
    assert _key_text(duckdb_warehouse, case) == case.text


@pytest.mark.parametrize("case", SNOWFLAKE_CASES, ids=lambda c: c.id)
def test_snowflake_writes_each_key_type_as_its_canonical_text(snowflake_warehouse, case):
    # Given a key of this type, When the warehouse writes its text, Then it is the canonical one
    assert _key_text(snowflake_warehouse, case) == case.text


@pytest.mark.parametrize("case", POSTGRES_CASES, ids=lambda c: c.id)
def test_postgres_writes_each_key_type_as_its_canonical_text(postgres_warehouse, case):
    # Given a key of this type, When the warehouse writes its text, Then it is the canonical one
    assert _key_text(postgres_warehouse, case) == case.text


@pytest.mark.parametrize("case", REDSHIFT_CASES, ids=lambda c: c.id)
def test_redshift_writes_each_key_type_as_its_canonical_text(redshift_warehouse, case):
    # Given a key of this type, When the warehouse writes its text, Then it is the canonical one
    assert _key_text(redshift_warehouse, case) == case.text


@pytest.mark.parametrize("case", BIGQUERY_CASES, ids=lambda c: c.id)
def test_bigquery_writes_each_key_type_as_its_canonical_text(bigquery_warehouse, case):
    # Given a key of this type, When the warehouse writes its text, Then it is the canonical one
    assert _key_text(bigquery_warehouse, case) == case.text


def test_databricks_writes_each_key_type_as_its_canonical_text(databricks_warehouse):
    # Given one row with a column of each key type (Spark takes seconds per statement: one table for all)
    d = databricks_warehouse.dialect
    columns = ", ".join(f"CAST({case.value} AS {case.type}) AS K{i}" for i, case in enumerate(DATABRICKS_CASES))
    databricks_warehouse.execute_all(["DROP TABLE IF EXISTS KEYS", f"CREATE TABLE KEYS AS SELECT {columns}"])

    # When the warehouse writes each column's text as it writes a key's
    described = WarehouseState(databricks_warehouse, "SEGSYNC").model_columns("SELECT * FROM KEYS")
    texts = ", ".join(d.text(d.quote(c.name), c.kind) for c in described)
    [row] = [row for batch in databricks_warehouse.stream(f"SELECT {texts} FROM KEYS", 10) for row in batch.rows]

    # Then each is its type's canonical text
    assert dict(zip((c.id for c in DATABRICKS_CASES), row, strict=True)) == {c.id: c.text for c in DATABRICKS_CASES}


SHAPES = (
    ("nested", re.compile(r"^[\[{]")),
    ("instant", re.compile(r"^\d{4}-\d\d-\d\dT.*Z$")),
    ("date", re.compile(r"^\d{4}-\d\d-\d\d$")),
    ("integer", re.compile(r"^-?\d+$")),
    ("decimal", re.compile(r"^-?\d+\.\d+$")),
)


def round_trips(cases: list[Case]) -> list[Case]:
    """The longest text of each shape (nested, instant, date, integer, decimal, other): a run costs a second
    or more, and the pipeline carries a text whatever made it; every case's text is checked above."""
    longest: dict[str, Case] = {}
    for case in cases:
        shape = next((name for name, pattern in SHAPES if pattern.match(case.text)), "other")
        if shape not in longest or len(case.text) > len(longest[shape].text):
            longest[shape] = case
    return list(longest.values())


class Pipeline:
    """The planner, a sender posting to a loopback endpoint, and the commit, over moto and one warehouse."""

    def __init__(self, stack, warehouse: Warehouse, capture: CaptureServer) -> None:
        self.stack = stack
        self.runs = RunStore(stack.table(os.environ["RUNS_TABLE"]))
        self.lifecycle = RunLifecycle(
            self.runs, Planner(self.runs, ChunkQueue(stack.client("sqs"), stack.queue_url)), 600
        )
        self.sender = Sender(self.runs, policy=SenderPolicy.of([capture.url]))
        self.warehouse = warehouse
        self.state = WarehouseState(warehouse, "SEGSYNC")
        self.destination = SegmentConnection.model_validate(
            {"type": "segment", "endpoint": capture.url, "write_key": {"env": "SEGMENT_WRITE_KEY"}}
        )

    def run(self, sync) -> dict[str, Any]:
        """One whole run: plan, deliver every chunk, then the planner's tick commits it; the run item as it ends."""
        planned = self.lifecycle.start(sync, self.destination, self.state, trigger="test")
        sqs = self.stack.client("sqs")
        while messages := sqs.receive_message(QueueUrl=self.stack.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                assert decode(message["Body"]).rows[0][0] is not None
                self.sender.process(message["Body"], deadline=float("inf"))
                sqs.delete_message(QueueUrl=self.stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
        if self.runs.lock(sync.name) is not None:
            self.lifecycle.advance(sync, self.destination, self.state, planned.run_id)
        return self.runs.run(sync.name, planned.run_id)

    def state_keys(self, sync) -> list[str]:
        return [row[0] for row in self.warehouse.query(
            f"SELECT ROW_KEY FROM SEGSYNC.SYNC_STATE WHERE SYNC = '{sync.name}'"
        )]  # fmt: skip

    def due(self, sync) -> int:
        """How many rows the next run would send (its diff, without sending)."""
        diff = self.state.prepare(sync, "next", destination_id(self.destination),
                                  self.state.model_columns(sync.sql), full_resync=False)  # fmt: skip
        self.state.drop_run(sync.name, "next")
        return diff.new + diff.changed


def _round_trip(stack, warehouse: Warehouse, case: Case, capture: CaptureServer, monkeypatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "test-write-key")
    _table(warehouse, case)
    pipeline = Pipeline(stack, warehouse, capture)
    users, events = _sync(USERS, _keys(warehouse)), _sync(EVENTS, _keys(warehouse))

    # When a User sync delivers the row, Then Segment gets the key text as userId, and state keeps it
    run = pipeline.run(users)
    [message] = read_captured(capture.out_path)
    assert (run["status"], run["sent"], message["userId"]) == ("committed", 1, case.text)
    assert pipeline.state_keys(users) == [case.text] and pipeline.due(users) == 0

    # When a Track sync's sender rejects the row (no user), Then it is rejected under the key text,
    # left out of state, and due again next run
    run = pipeline.run(events)
    rejected = pipeline.state.rejected(events.name)
    assert (run["status"], run["rejected_sender"], run["committed"]) == ("committed", 1, 0)
    assert [(r["row_key"], r["field"]) for r in rejected] == [(case.text, "userId")]
    assert pipeline.state_keys(events) == [] and pipeline.due(events) == 1


ROUND_TRIPS = {
    "duckdb": round_trips(DUCKDB_CASES),
    "snowflake": round_trips(SNOWFLAKE_CASES),
    "postgres": round_trips(POSTGRES_CASES),
    "redshift": round_trips(REDSHIFT_CASES),
    "bigquery": round_trips(BIGQUERY_CASES),
}


@pytest.mark.parametrize("case", ROUND_TRIPS["duckdb"], ids=lambda c: c.id)
def test_duckdb_keys_of_each_shape_are_one_text_from_planner_to_commit(
    stack, duckdb_warehouse, case, capture, monkeypatch
):
    _round_trip(stack, duckdb_warehouse, case, capture, monkeypatch)


@pytest.mark.parametrize("case", ROUND_TRIPS["snowflake"], ids=lambda c: c.id)
def test_snowflake_keys_of_each_shape_are_one_text_from_planner_to_commit(
    stack, snowflake_warehouse, case, capture, monkeypatch
):
    _round_trip(stack, snowflake_warehouse, case, capture, monkeypatch)


@pytest.mark.parametrize("case", ROUND_TRIPS["postgres"], ids=lambda c: c.id)
def test_postgres_keys_of_each_shape_are_one_text_from_planner_to_commit(
    stack, postgres_warehouse, case, capture, monkeypatch
):
    _round_trip(stack, postgres_warehouse, case, capture, monkeypatch)


@pytest.mark.parametrize("case", ROUND_TRIPS["redshift"], ids=lambda c: c.id)
def test_redshift_keys_of_each_shape_are_one_text_from_planner_to_commit(
    stack, redshift_warehouse, case, capture, monkeypatch
):
    _round_trip(stack, redshift_warehouse, case, capture, monkeypatch)


@pytest.mark.parametrize("case", ROUND_TRIPS["bigquery"], ids=lambda c: c.id)
def test_bigquery_keys_of_each_shape_are_one_text_from_planner_to_commit(
    stack, bigquery_warehouse, case, capture, monkeypatch
):
    _round_trip(stack, bigquery_warehouse, case, capture, monkeypatch)

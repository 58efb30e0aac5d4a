"""What each warehouse's dialect renders differently: quoting, literals, statements an engine lacks.

The rendered SQL runs against each engine in tests/integration (a real PostgreSQL, bqemulator, a local
Spark, DuckDB, fakesnow); these pin the shapes that must not drift without anyone noticing.
"""

import pytest

from segsync.warehouse.dialect import (
    BigQueryDialect,
    DatabricksDialect,
    Dialect,
    PostgresDialect,
    RedshiftDialect,
    SnowflakeDialect,
)

UPSERT = {
    "target": "SEGSYNC.SYNC_STATE",
    "source": "SELECT 'a' AS SYNC, 'k' AS ROW_KEY, 'h' AS ROW_HASH",
    "on": ["SYNC", "ROW_KEY"],
    "update": {"ROW_HASH": "d.ROW_HASH"},
    "insert": {"SYNC": "d.SYNC", "ROW_KEY": "d.ROW_KEY", "ROW_HASH": "d.ROW_HASH"},
}


@pytest.mark.parametrize("dialect", [BigQueryDialect(), DatabricksDialect()], ids=lambda d: d.name)
def test_engines_where_a_backslash_escapes_get_it_escaped(dialect):
    # Given a name holding a backslash and a quote, When written as a literal, Then both survive
    assert dialect.literal("a\\b's") == "'a\\\\b\\'s'"


def test_backtick_engines_quote_identifiers_with_backticks():
    assert BigQueryDialect().quote("my col") == "`my col`"
    assert DatabricksDialect().quote("a`b") == "`a``b`"


@pytest.mark.parametrize("dialect", [PostgresDialect(), RedshiftDialect()], ids=lambda d: d.name)
def test_postgres_and_redshift_replace_a_table_by_dropping_it_first(dialect):
    # Given an engine without CREATE OR REPLACE TABLE, When a run table is (re)created
    statements = dialect.create_table_as("SEGSYNC.RUN_X", "SELECT 1 AS x")

    # Then it is dropped, then created (the adapter runs both in one transaction)
    assert statements == ["DROP TABLE IF EXISTS SEGSYNC.RUN_X", "CREATE TABLE SEGSYNC.RUN_X AS\nSELECT 1 AS x"]


@pytest.mark.parametrize(
    "dialect", [Dialect(), SnowflakeDialect(), BigQueryDialect(), DatabricksDialect()], ids=lambda d: d.name
)
def test_engines_with_merge_upsert_in_one_statement(dialect):
    [statement] = dialect.merge(**UPSERT)
    assert statement.startswith("MERGE INTO SEGSYNC.SYNC_STATE AS s USING (")
    assert "WHEN NOT MATCHED THEN INSERT (SYNC, ROW_KEY, ROW_HASH) VALUES (d.SYNC, d.ROW_KEY, d.ROW_HASH)" in statement


@pytest.mark.parametrize("dialect", [PostgresDialect(), RedshiftDialect()], ids=lambda d: d.name)
def test_postgres_and_redshift_upsert_with_update_then_insert_where_missing(dialect):
    # Given an upsert, When rendered where MERGE is missing (PostgreSQL before 15) or differs (Redshift)
    update, insert = dialect.merge(**UPSERT)

    # Then matched rows are updated from the source, and only rows with no match are inserted
    assert update.startswith("UPDATE SEGSYNC.SYNC_STATE AS s SET ROW_HASH = d.ROW_HASH\nFROM (")
    assert update.endswith("AS d WHERE s.SYNC = d.SYNC AND s.ROW_KEY = d.ROW_KEY")
    assert insert.startswith("INSERT INTO SEGSYNC.SYNC_STATE (SYNC, ROW_KEY, ROW_HASH)\nSELECT d.SYNC")
    assert insert.endswith(
        "WHERE NOT EXISTS (SELECT 1 FROM SEGSYNC.SYNC_STATE AS s WHERE s.SYNC = d.SYNC AND s.ROW_KEY = d.ROW_KEY)"
    )


def test_an_update_only_merge_inserts_nothing():
    assert len(PostgresDialect().merge(**{**UPSERT, "insert": None})) == 1
    assert "WHEN NOT MATCHED" not in Dialect().merge(**{**UPSERT, "insert": None})[0]


def test_redshift_texts_are_not_cut_at_256_bytes():
    # Given Redshift, where a bare VARCHAR holds 256 bytes, When a value is cast to text, Then it keeps all
    assert RedshiftDialect().cast_text("x") == "CAST(x AS VARCHAR(65535))"
    assert PostgresDialect().cast_text("x") == "CAST(x AS VARCHAR)"
    assert BigQueryDialect().cast_text("x") == "CAST(x AS STRING)"

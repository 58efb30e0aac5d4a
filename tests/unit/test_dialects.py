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


ALL = [Dialect(), SnowflakeDialect(), PostgresDialect(), RedshiftDialect(), BigQueryDialect(), DatabricksDialect()]


@pytest.mark.parametrize("dialect", ALL, ids=lambda d: d.name)
def test_every_dialect_builds_the_kept_values_object_from_each_name_and_text(dialect):
    # Given two (name, text expression) pairs, When a dialect writes their JSON object
    sql = dialect.json_object([("plan", "r.plan_text"), ("renews on", "r.renews_text")])

    # Then both names and both expressions are in it (tests/integration runs it on each engine)
    assert "plan" in sql and "renews on" in sql and "r.plan_text" in sql and "r.renews_text" in sql


def test_postgres_builds_the_object_from_two_arrays_so_a_wide_row_fits():
    # Given 60 columns (json_build_object takes at most 100 arguments: 50 columns), When written
    sql = PostgresDialect().json_object([(f"c{i}", f"t{i}") for i in range(60)])

    # Then names and texts go as two arrays, whatever their number
    assert sql.startswith("CAST(JSON_OBJECT(CAST(ARRAY['c0', 'c1', ") and "JSON_BUILD_OBJECT" not in sql


def test_redshift_writes_the_object_out_with_each_string_escaped():
    # Given Redshift, which builds JSON only from SUPER values, When a pair is written
    sql = RedshiftDialect().json_object([("plan", "t")])

    # Then the text is assembled, the value's backslashes escaped before its quotes and line breaks, NULL as null
    assert sql.startswith(
        """'{' || '"plan":' || COALESCE(CHR(34) || REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(t, CHR(92)"""
    )
    assert sql.endswith(", CHR(9), CHR(92) || 't') || CHR(34), 'null') || '}'")


@pytest.mark.parametrize(
    ("dialect", "statement"),
    [
        (Dialect(), "ALTER TABLE SEGSYNC.SYNC_STATE ADD COLUMN IF NOT EXISTS ROW_VALUES VARCHAR"),
        (RedshiftDialect(), "ALTER TABLE SEGSYNC.SYNC_STATE ADD COLUMN ROW_VALUES VARCHAR"),
        (DatabricksDialect(), "ALTER TABLE SEGSYNC.SYNC_STATE ADD COLUMNS (ROW_VALUES VARCHAR)"),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_a_column_is_added_as_each_engine_allows(dialect, statement):
    # Redshift and Spark have no IF NOT EXISTS there: the state checks the column is missing first
    assert dialect.add_column("SEGSYNC.SYNC_STATE", "ROW_VALUES", "VARCHAR") == statement

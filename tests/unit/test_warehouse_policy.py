"""The planner's warehouse policy: vendors' own hosts and the deployment's listed ones; credentials from its prefix."""

from __future__ import annotations

from typing import Any

import pytest

from segsync.config import CONNECTION_ADAPTER, PostgresConnection, SecretRef, load_project
from segsync.errors import ConfigError, PolicyError
from segsync.settings import PlannerSettings
from segsync.warehouse.policy import WarehousePolicy, address, parse_allowed_hosts, project_hosts

PROD = {"secret": "segsync/warehouse/prod"}
PLANNER_ENV = {"SYNCS_TABLE": "s", "RUNS_TABLE": "r", "QUEUE_URL": "q"}


def _connection(**fields: Any) -> Any:
    """A validated connection; ``credentials=None`` for the kinds that have none (DuckDB, Redshift)."""
    data = {"credentials": PROD, **fields}
    return CONNECTION_ADAPTER.validate_python({key: value for key, value in data.items() if value is not None})


def _postgres(**fields: Any) -> Any:
    return _connection(type="postgres", database="d", user="u", **{"host": "db.internal", **fields})


@pytest.fixture
def policy() -> WarehousePolicy:
    return WarehousePolicy.of(["db.internal", "10.0.0.7:5432", "bq-psc.internal:443"], "segsync/warehouse/")


@pytest.mark.parametrize(
    "connection",
    [
        _connection(type="snowflake", account="xy12345.eu-west-1", user="u"),
        _connection(type="snowflake", account="ORG-ACCOUNT", user="u"),
        _connection(type="snowflake", account="xy12345.privatelink", user="u"),
        _connection(type="databricks", server_hostname="dbc-a1b2c3d4-e5f6.cloud.databricks.com", http_path="/p"),
        _connection(type="databricks", server_hostname="https://adb-1234.7.azuredatabricks.net/", http_path="/p"),
        _connection(type="databricks", server_hostname="1234.7.gcp.databricks.com", http_path="/p"),
        _connection(type="bigquery", project="p"),
        _connection(type="bigquery", project="p", api_endpoint="https://bigquery.googleapis.com"),
        _connection(type="bigquery", project="p", api_endpoint="https://bq-psc.internal"),
        _connection(type="redshift", database="d", workgroup_name="w", credentials=None, secret_arn=None),
        _connection(
            type="redshift",
            database="d",
            workgroup_name="w",
            credentials=None,
            endpoint_url="https://redshift-data.eu-west-1.amazonaws.com",
        ),
        _connection(
            type="redshift",
            database="d",
            cluster_identifier="c",
            credentials=None,
            secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:segsync/warehouse/rs-AbCdEf",
        ),
        _postgres(),
        _postgres(host="DB.Internal.", port=6543),
        _postgres(host="10.0.0.7"),
        _postgres(credentials={"env": "SEGSYNC_WAREHOUSE_PG"}),
        _connection(type="duckdb", path="w.duckdb", credentials=None),
    ],
    ids=lambda connection: connection.type,
)
def test_vendor_hosts_and_listed_hosts_pass(policy, connection):
    # Given a connection to its vendor's own host (HTTPS) or a listed one, its credentials from the prefixes
    # When / Then the policy lets it through
    policy.check("sync-a", "warehouse", connection)


@pytest.mark.parametrize(
    ("connection", "why"),
    [
        (_postgres(host="attacker.example"), "may not send postgres credentials to attacker.example:5432"),
        (_postgres(host="10.0.0.7", port=5433), "to 10.0.0.7:5433"),  # listed on another port only
        (_postgres(host="db.internal,attacker.example"), "is not a single host name"),  # libpq's host list
        (_postgres(host="/var/run/postgresql"), "is not a single host name"),  # a socket directory
        (
            _connection(type="snowflake", account="acme", user="u", host="https://attacker.example"),
            "may not send snowflake credentials to https://attacker.example",
        ),
        (
            _connection(type="databricks", server_hostname="attacker.example", http_path="/p"),
            "to https://attacker.example (it connects to Databricks' own hosts over HTTPS",
        ),
        (
            _connection(type="databricks", server_hostname="http://dbc-1.cloud.databricks.com", http_path="/p"),
            "to http://dbc-1.cloud.databricks.com",  # the vendor's host, but the token in clear text
        ),
        (
            _connection(
                type="databricks", server_hostname="dbc-1.cloud.databricks.com.attacker.example", http_path="/p"
            ),
            "to https://dbc-1.cloud.databricks.com.attacker.example",
        ),
        (
            _connection(type="databricks", server_hostname="attacker.example#.cloud.databricks.com", http_path="/p"),
            "has a query or fragment",
        ),
        (
            _connection(
                type="databricks", server_hostname="https://attacker.example/x.cloud.databricks.com", http_path="/p"
            ),
            "has a path",
        ),
        (
            _connection(type="bigquery", project="p", api_endpoint="https://attacker.example"),
            "may not send bigquery credentials to https://attacker.example",
        ),
        (
            _connection(type="bigquery", project="p", api_endpoint="https://bigquery.googleapis.com:8443"),
            "to https://bigquery.googleapis.com:8443",
        ),
        (
            _connection(
                type="redshift",
                database="d",
                workgroup_name="w",
                credentials=None,
                endpoint_url="https://abc.execute-api.us-east-1.amazonaws.com",
            ),
            "to https://abc.execute-api.us-east-1.amazonaws.com",
        ),
        (_postgres(credentials={"secret": "segsync/segment/prod"}), "secret 'segsync/segment/prod' is not under"),
        (
            _connection(
                type="redshift",
                database="d",
                cluster_identifier="c",
                credentials=None,
                secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:other/rs-AbCdEf",
            ),
            "secret_arn's secret 'other/rs-AbCdEf' is not under the planner's prefix",
        ),
        (
            # Built past validation: the policy holds on its own, whatever produced the connection.
            PostgresConnection.model_construct(
                type="postgres",
                host="db.internal",
                port=5432,
                database="d",
                user="u",
                credentials=SecretRef.model_construct(env="AWS_SECRET_ACCESS_KEY"),
            ),
            "starting with SEGSYNC_WAREHOUSE_, not from AWS_SECRET_ACCESS_KEY",
        ),
    ],
)
def test_other_hosts_and_other_credential_sources_are_refused_naming_the_sync_and_connection(policy, connection, why):
    # Given a connection an attacker could write in the syncs table
    # When the policy checks it
    with pytest.raises(PolicyError) as refused:
        policy.check("sync-a", "warehouse", connection)

    # Then it is refused in one line naming the sync, the connection and why
    message = str(refused.value)
    assert message.startswith("sync 'sync-a': connection 'warehouse' refused: ") and why in message
    assert "\n" not in message


@pytest.mark.parametrize("account", ["attacker.example/", "attacker.example#", "a..b", "a b", "a@b"])
def test_a_snowflake_account_is_dot_separated_labels_so_its_host_is_snowflakes(account):
    # Given an account that would make the connector's host something else than <account>.snowflakecomputing.com
    # When / Then the connection is refused where it is read, naming the field
    with pytest.raises(Exception, match="account"):
        _connection(type="snowflake", account=account, user="u")


def test_warehouse_credentials_come_from_segsync_warehouse_variables_only():
    # Given a connection naming the function's own AWS secret key as its password
    # When it is read (a project file or a sync item) / Then it is refused, naming the rule
    with pytest.raises(Exception, match="must start with SEGSYNC_WAREHOUSE_"):
        _postgres(credentials={"env": "AWS_SECRET_ACCESS_KEY"})


def test_the_address_checked_is_the_one_the_adapters_connect_to():
    # Given connections naming their hosts in various spellings
    # When their addresses are taken / Then each is normalised once, as the adapters use it
    assert address(_connection(type="snowflake", account="XY1.cn-north-1", user="u")).base == (
        "https://xy1.cn-north-1.snowflakecomputing.cn"
    )
    dbx = _connection(type="databricks", server_hostname="DBC-1.cloud.databricks.com", http_path="/p")
    assert address(dbx).base == "https://dbc-1.cloud.databricks.com"
    assert str(address(_postgres(host="FD00::7", port=5433))) == "[fd00::7]:5433"
    assert address(_connection(type="bigquery", project="p")) is None


def test_allowed_hosts_are_read_from_the_environment_and_checked():
    # Given WAREHOUSE_ALLOWED_HOSTS with spaces and an empty entry, and a prefix
    settings = PlannerSettings.from_env(
        {**PLANNER_ENV, "WAREHOUSE_ALLOWED_HOSTS": " db.internal, ,[fd00::7]:5432 ", "WAREHOUSE_SECRETS_PREFIX": "x/"}
    )
    # Then the entries are kept (defaults: none, and the template's prefix)
    assert (settings.warehouse_allowed_hosts, settings.warehouse_secrets_prefix) == (
        ("db.internal", "[fd00::7]:5432"),
        "x/",
    )
    default = PlannerSettings.from_env(PLANNER_ENV)
    assert (default.warehouse_allowed_hosts, default.warehouse_secrets_prefix) == ((), "segsync/warehouse/")
    assert parse_allowed_hosts("a.example:1,b.example") == ("a.example:1", "b.example")


@pytest.mark.parametrize("entry", ["https://db.internal", "db.internal/x", "user@db.internal", "db.internal:99999"])
def test_an_allowed_host_is_a_host_or_host_and_port(entry):
    # Given WAREHOUSE_ALLOWED_HOSTS holding something else / Then the planner's settings are refused, named
    with pytest.raises(ConfigError, match="WAREHOUSE_ALLOWED_HOSTS"):
        PlannerSettings.from_env({**PLANNER_ENV, "WAREHOUSE_ALLOWED_HOSTS": entry})


def test_a_local_command_allows_the_hosts_its_own_project_file_names(tmp_path):
    # Given a project file of the user's own, with a PostgreSQL server and a BigQuery emulator
    path = tmp_path / "segsync.yml"
    path.write_text(
        """
connections:
  pg: {type: postgres, host: 127.0.0.1, port: 6543, database: d, user: u, credentials: {env: SEGSYNC_WAREHOUSE_PG}}
  bq: {type: bigquery, project: p, api_endpoint: "http://localhost:9050", credentials: {env: SEGSYNC_WAREHOUSE_BQ}}
  segment: {type: segment, write_key: {env: SEGMENT_WRITE_KEY}}
syncs:
  - {name: a, object: user, source: pg, destination: segment, model: SELECT 1 AS id, key: id}
"""
    )
    project = load_project(path)

    # When / Then its policy allows exactly those (and still refuses the deployment's rules' breaches)
    assert project_hosts(project) == ["127.0.0.1:6543", "localhost:9050"]
    local = WarehousePolicy.for_project(project)
    local.check("a", "pg", project.connections["pg"])
    with pytest.raises(PolicyError, match=r"127\.0\.0\.1:6544"):
        local.check("a", "pg", project.connections["pg"].model_copy(update={"port": 6544}))

"""The project file and sync items: one set of pydantic models for YAML and DynamoDB alike."""

from __future__ import annotations

import ipaddress
import math
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from segsync.errors import ConfigError
from segsync.schedule import parse as parse_schedule

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SEGMENT_HOSTS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}
WRITE_KEY_ENV_PREFIX = "SEGMENT_"
"""An environment variable holding a write key starts with this, so the function's own environment
(AWS_SECRET_ACCESS_KEY and the rest) can never be named as one (see segsync.endpoints)."""
WAREHOUSE_ENV_PREFIX = "SEGSYNC_WAREHOUSE_"
"""An environment variable holding warehouse credentials starts with this, for the same reason (see
segsync.warehouse.policy)."""
SNOWFLAKE_ACCOUNT = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
"""An account identifier: dot-separated labels, so the host the connector makes of it is Snowflake's."""


# Descriptions that several fields share (they reach the JSON Schema and the docs' project file reference).
_STATE_SCHEMA_TEXT = "the schema segsync keeps its bookkeeping tables in (created on first use; a plain identifier)"
_NORMALIZATION_TEXT = "how Sync All Properties names the columns it sends (created_at → createdAt in camelCase)"
_NULL_VALUES_TEXT = "omit: a null leaves the field out, so it never erases a value downstream; send: sends null"
_USER_ID_TEXT = "the column holding the userId (give user_id and/or anonymous_id)"
_ANONYMOUS_ID_TEXT = "the column holding the anonymousId"
_MAPPINGS_TEXT = "message path → source: any field under the message's object, context or integrations"


class Model(BaseModel):
    """Strict base: an unknown field is a typo the user must hear about, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Model):
    """Where a secret comes from: an environment variable or a Secrets Manager secret (never inline)."""

    env: str | None = Field(default=None, description="an environment variable holding the secret")
    secret: str | None = Field(
        default=None, description="a Secrets Manager secret's name (in AWS, under the stack's prefix for its kind)"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.secret is None):
            raise ValueError("give exactly one of 'env' (an environment variable) or 'secret' (a Secrets Manager name)")
        return self


def _warehouse_env(value: SecretRef) -> SecretRef:
    """Warehouse credentials from the environment come from a SEGSYNC_WAREHOUSE_ variable, never another."""
    if value.env is not None and not value.env.startswith(WAREHOUSE_ENV_PREFIX):
        raise ValueError(
            f"warehouse credentials' environment variable must start with {WAREHOUSE_ENV_PREFIX} "
            f"(e.g. {WAREHOUSE_ENV_PREFIX}PASSWORD), not {value.env}"
        )
    return value


_CREDENTIALS_ENV = f"{{env: {WAREHOUSE_ENV_PREFIX}...}} or {{secret: NAME}}"


class DuckDBConnection(Model):
    """The embedded default warehouse: a DuckDB file."""

    type: Literal["duckdb"]
    path: str = Field(description="the DuckDB file, relative to the project file")
    state_schema: str = Field(default="SEGSYNC", description=_STATE_SCHEMA_TEXT)
    memory_limit: str = Field(
        default="128MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="DuckDB runs inside the planner: past this it spills to disk instead of growing",
    )


class SnowflakeConnection(Model):
    """A Snowflake warehouse; credentials come from Secrets Manager or the environment."""

    type: Literal["snowflake"]
    account: str = Field(
        pattern=SNOWFLAKE_ACCOUNT, description="the account identifier, e.g. xy12345.eu-west-1 or ORGNAME-ACCOUNTNAME"
    )
    user: str = Field(description="the user segsync signs in as")
    warehouse: str | None = Field(
        default=None, description="the virtual warehouse queries run on (default: the user's)"
    )
    database: str | None = Field(default=None, description="the database of the models' unqualified names")
    schema_: str | None = Field(default=None, alias="schema", description="the schema of the models' unqualified names")
    role: str | None = Field(default=None, description="the role queries run as (default: the user's)")
    credentials: SecretRef = Field(
        description=f'{_CREDENTIALS_ENV}: JSON {{"private_key": PEM, "private_key_passphrase": ...}} (key pair) '
        'or {"password": ...}'
    )
    host: str | None = Field(
        default=None,
        description="another address for the account (a proxy, an emulator), as https://HOST[:PORT]; "
        "in AWS it must be listed in WarehouseAllowedHosts. Default: ACCOUNT.snowflakecomputing.com",
    )
    state_schema: str = Field(default="SEGSYNC", description=_STATE_SCHEMA_TEXT)

    _credentials_env = field_validator("credentials")(_warehouse_env)


class PostgresConnection(Model):
    """A PostgreSQL database; the password comes from Secrets Manager or the environment."""

    type: Literal["postgres"]
    host: str = Field(
        min_length=1,
        description="the server's host name or address; in AWS it must be listed in WarehouseAllowedHosts",
    )
    port: int = Field(default=5432, gt=0, lt=65536, description="the server's port")
    database: str = Field(min_length=1, description="the database holding the models and the bookkeeping schema")
    user: str = Field(min_length=1, description="the role segsync signs in as")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="libpq's sslmode: require (or verify-full) across any network you do not own"
    )
    credentials: SecretRef = Field(description=f'{_CREDENTIALS_ENV}: JSON {{"password": "..."}}, or the password')
    state_schema: str = Field(default="SEGSYNC", description=_STATE_SCHEMA_TEXT)
    connect_timeout: int = Field(default=10, gt=0, description="seconds to wait for the server to answer")

    _credentials_env = field_validator("credentials")(_warehouse_env)


class RedshiftConnection(Model):
    """An Amazon Redshift database, reached through the Redshift Data API with the planner's IAM role.

    A provisioned cluster (``cluster_identifier``) signs in as ``db_user`` with temporary credentials, or
    with the username and password of the Secrets Manager secret ``secret_arn``; a Serverless workgroup
    (``workgroup_name``) as the role itself, or with ``secret_arn``.
    """

    type: Literal["redshift"]
    database: str = Field(min_length=1, description="the database holding the models and the bookkeeping schema")
    cluster_identifier: str | None = Field(default=None, description="a provisioned cluster (or workgroup_name)")
    workgroup_name: str | None = Field(
        default=None, description="a Redshift Serverless workgroup (or cluster_identifier)"
    )
    db_user: str | None = Field(default=None, description="a provisioned cluster's user for IAM temporary credentials")
    secret_arn: str | None = Field(default=None, description="a Secrets Manager secret holding username and password")
    region: str | None = Field(default=None, description="the cluster's region (default: the planner's)")
    endpoint_url: str | None = Field(
        default=None,
        description="another Data API endpoint (a VPC interface endpoint's URL); default: AWS's. In AWS it must be "
        "listed in WarehouseAllowedHosts",
    )
    state_schema: str = Field(default="SEGSYNC", description=_STATE_SCHEMA_TEXT)

    @model_validator(mode="after")
    def _one_target(self) -> RedshiftConnection:
        if (self.cluster_identifier is None) == (self.workgroup_name is None):
            raise ValueError("give exactly one of 'cluster_identifier' (provisioned) or 'workgroup_name' (Serverless)")
        if self.cluster_identifier and not (self.db_user or self.secret_arn):
            raise ValueError("a provisioned cluster needs 'db_user' (IAM temporary credentials) or 'secret_arn'")
        return self


class BigQueryConnection(Model):
    """A Google BigQuery project; the service account's JSON key comes from Secrets Manager or the environment."""

    type: Literal["bigquery"]
    project: str = Field(min_length=1, description="the project queries run (and are billed) in")
    dataset: str = Field(default="SEGSYNC", description="the dataset segsync keeps its bookkeeping tables in")
    location: str = Field(default="US", description="where the dataset and the query jobs live (US, EU, a region)")
    credentials: SecretRef = Field(description=f"{_CREDENTIALS_ENV}: the service account's JSON key")
    api_endpoint: str | None = Field(
        default=None,
        description="another BigQuery API base (a Private Service Connect endpoint); in AWS it must be listed "
        "in WarehouseAllowedHosts",
    )

    _credentials_env = field_validator("credentials")(_warehouse_env)

    @property
    def state_schema(self) -> str:
        """BigQuery's schemas are datasets: the bookkeeping one."""
        return self.dataset


class DatabricksConnection(Model):
    """A Databricks SQL warehouse; its token comes from Secrets Manager or the environment."""

    type: Literal["databricks"]
    server_hostname: str = Field(
        min_length=1,
        description="e.g. dbc-a1b2c3d4-e5f6.cloud.databricks.com (Databricks' cloud domains; any other host must be "
        "listed in WarehouseAllowedHosts)",
    )
    http_path: str = Field(min_length=1, description="the SQL warehouse's HTTP path, /sql/1.0/warehouses/...")
    catalog: str | None = Field(default=None, description="the catalog of the models' unqualified names")
    schema_: str | None = Field(default=None, alias="schema", description="the schema of the models' unqualified names")
    credentials: SecretRef = Field(
        description=f'{_CREDENTIALS_ENV}: a personal access or service principal token: JSON {{"token": ...}} '
        "or the token"
    )
    state_schema: str = Field(default="SEGSYNC", description=_STATE_SCHEMA_TEXT)

    _credentials_env = field_validator("credentials")(_warehouse_env)


AnyWarehouseConnection = (
    DuckDBConnection
    | SnowflakeConnection
    | PostgresConnection
    | RedshiftConnection
    | BigQueryConnection
    | DatabricksConnection
)
WAREHOUSE_CONNECTIONS = (
    DuckDBConnection,
    SnowflakeConnection,
    PostgresConnection,
    RedshiftConnection,
    BigQueryConnection,
    DatabricksConnection,
)
WarehouseConnection = Annotated[AnyWarehouseConnection, Field(discriminator="type")]


class SegmentConnection(Model):
    """A Segment source: its region (or an explicit API base) and where its write key lives."""

    type: Literal["segment"]
    region: Literal["us", "eu"] = Field(
        default="us", description="the workspace's region: EU data sent to the US host is silently lost"
    )
    endpoint: str | None = Field(
        default=None, description="an explicit API base (requests go to URL/v1/batch), in place of the region's host"
    )
    write_key: SecretRef = Field(description="the source's write key: {env: SEGMENT_...} or {secret: NAME}")
    events_per_second: int = Field(
        default=1000, gt=0, description="the pace toward this source (Segment asks for about 1,000 per workspace)"
    )
    local_capture: SkipJsonSchema[bool | None] = Field(
        default=None,
        description="set by segsync demo and run --local --faults: the endpoint is segsync's capture endpoint on "
        "this machine, whose state is one whatever its port (segsync.state.destination_id); never written by hand",
    )

    @field_validator("write_key")
    @classmethod
    def _write_key_env(cls, value: SecretRef) -> SecretRef:
        if value.env is not None and not value.env.startswith(WRITE_KEY_ENV_PREFIX):
            raise ValueError(
                f"a write key's environment variable must start with {WRITE_KEY_ENV_PREFIX} "
                f"(e.g. SEGMENT_WRITE_KEY), not {value.env}"
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("endpoint must be an http(s) URL such as https://api.segment.io")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _capture_on_loopback(self) -> SegmentConnection:
        # Only a loopback endpoint can be the capture endpoint: a real Segment source never loses its own state.
        if self.local_capture and not _loopback(self.endpoint):
            raise ValueError(
                f"local_capture needs an endpoint on this machine (http://127.0.0.1:PORT), not {self.endpoint}"
            )
        return self

    @property
    def api_base(self) -> str:
        return self.endpoint or SEGMENT_HOSTS[self.region]


def _loopback(url: str | None) -> bool:
    host = urlsplit(url).hostname if url else None
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Connection = Annotated[AnyWarehouseConnection | SegmentConnection, Field(discriminator="type")]


class Value(Model):
    """A constant in place of a column: ``{value: warehouse}``; ``{value: null}`` sends null on purpose."""

    value: Any = Field(description="any JSON value, sent as it is")

    @field_validator("value")
    @classmethod
    def _json(cls, value: Any) -> Any:
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"a constant must be plain JSON: {exc}") from None
        if not _finite(value):
            raise ValueError("a constant must be plain JSON: NaN and Infinity are not JSON numbers")
        return value

    @model_serializer(mode="plain")
    def _always_with_value(self) -> dict[str, Any]:
        # Dumped with exclude_none (chunks, the syncs table), {value: null} must not become {}.
        return {"value": self.value}


NullPolicy = Literal["send", "omit"]
"""What a null value does: ``send`` it as null (clears the field downstream) or ``omit`` the field."""


class Column(Model):
    """A column with its own null rule, in place of a bare column name: ``{column: plan, nulls: send}``."""

    column: str = Field(min_length=1, description="the column's name")
    nulls: NullPolicy | None = Field(default=None, description="overrides the sync's null_values")


def _source_kind(source: Any) -> str | None:
    """Which form a mapping source takes, so an error speaks of that form only."""
    if isinstance(source, str):
        return "str"
    if isinstance(source, Value) or (isinstance(source, dict) and "value" in source):
        return "Value"
    if isinstance(source, Column | dict):
        return "Column"
    return None


Source = Annotated[
    Annotated[str, Field(min_length=1), Tag("str")] | Annotated[Value, Tag("Value")] | Annotated[Column, Tag("Column")],
    Discriminator(
        _source_kind,
        custom_error_type="source",
        custom_error_message="give a column name, {value: constant} or {column: name, nulls: send|omit}",
    ),
]
"""A mapping source: a column name, ``{value: ...}`` for a constant, or ``{column: ..., nulls: ...}``."""

Normalization = Literal["none", "snake_case", "camelCase", "PascalCase", "Title Case", "lowercase"]

MESSAGE_FIELDS_SET_BY_SEGSYNC = {
    "type": "the sync's object",
    "messageId": "segsync (it makes resends deduplicate)",
    "userId": "the sync's identity columns (key/key_field or user_id)",
    "anonymousId": "the sync's identity columns (key/key_field or anonymous_id)",
    "groupId": "the sync's group_id",
    "event": "the sync's event (or events)",
    "timestamp": "the sync's timestamp",
    "sentAt": "the sender, at send time",
    "receivedAt": "Segment",
    "originalTimestamp": "Segment",
    "writeKey": "the destination's write key",
}
RESERVED_TARGETS = {("context", "library"): "context.library names segsync and is set by segsync"}
_TARGET_SEGMENT = re.compile(r'"([^"]+)"|([^."]+)')


def parse_target(text: str) -> tuple[str, ...]:
    """Split a mapping target into its path: ``properties.order.total`` → (properties, order, total).

    A segment holding a dot is quoted: ``integrations."Segment.io"``.

    Raises:
        ValueError: an empty segment, a stray quote, or a leading/trailing dot.
    """
    parts: list[str] = []
    position = 0
    while True:
        match = _TARGET_SEGMENT.match(text, position)
        if match is None:
            raise ValueError(
                f"target '{text}' is not a dotted path such as traits.plan or context.traits.email "
                '(quote a name that holds a dot: integrations."Segment.io")'
            )
        parts.append(match.group(1) if match.group(1) is not None else match.group(2))
        position = match.end()
        if position == len(text):
            return tuple(parts)
        if text[position] != "." or position + 1 == len(text):
            raise ValueError(
                f"target '{text}' is not a dotted path such as traits.plan or context.traits.email "
                '(quote a name that holds a dot: integrations."Segment.io")'
            )
        position += 1


def format_target(path: tuple[str, ...]) -> str:
    """The inverse of parse_target, for messages: segments holding a dot are quoted."""
    return ".".join(f'"{p}"' if "." in p else p for p in path)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


class DbtModel(Model):
    """A dbt model by name, in place of SQL: ``model: {dbt: dim_users}`` reads the relation dbt built."""

    dbt: str = Field(min_length=1, description="the dbt model's name (or package.name), looked up in the dbt manifest")
    relation: SkipJsonSchema[str | None] = Field(
        default=None,
        description="the relation dbt built, filled in from the manifest (validate, push, run); never written by hand",
    )


def _model_kind(model: Any) -> str | None:
    if isinstance(model, str):
        return "sql"
    if isinstance(model, DbtModel | dict):
        return "dbt"
    return None


ModelSource = Annotated[
    Annotated[str, Field(min_length=1), Tag("sql")] | Annotated[DbtModel, Tag("dbt")],
    Discriminator(_model_kind, custom_error_type="model", custom_error_message="give SQL text or {dbt: MODEL_NAME}"),
]
"""Where a sync's rows come from: SQL run against the warehouse, or a dbt model by name."""


def _integration_setting(value: Any) -> bool:
    """Segment's integrations object holds true/false or an options object per destination."""
    return isinstance(value, bool | dict)


class SyncBase(Model):
    """What every sync has: where rows come from, where they go, and when."""

    name: str = Field(pattern=NAME_PATTERN, description="lowercase letters, digits, - and _")
    enabled: bool = Field(default=True, description="false: no tick and no dbt Cloud run starts it")
    source: str = Field(description="name of a warehouse connection")
    destination: str = Field(description="name of a Segment connection")
    model: ModelSource = Field(description="SQL run against the warehouse, or {dbt: MODEL_NAME}")
    schedule: str | None = Field(default=None, description="rate(...) or cron(...), UTC; none: every tick")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        """A bad expression is a config error now, not a sync that silently never runs."""
        if value is not None:
            try:
                parse_schedule(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    OBJECT_FIELD: ClassVar[str] = "traits"
    """The message object a sync's named fields and Sync All Properties fill (traits or properties)."""

    @property
    def sql(self) -> str:
        """The query the warehouse runs: the model's SQL, or a read of the relation its dbt model names.

        Raises:
            ConfigError: a dbt model that was never resolved (an item written by hand, not by push).
        """
        if isinstance(self.model, str):
            return self.model
        if self.model.relation is None:
            raise ConfigError(
                f"dbt model '{self.model.dbt}' has no relation: push the project file with its dbt manifest "
                "(segsync push), which resolves it"
            )
        return f"SELECT * FROM {self.model.relation}"

    @property
    def dbt_model(self) -> str | None:
        """The dbt model the sync reads, if it names one."""
        return self.model.dbt if isinstance(self.model, DbtModel) else None

    @property
    def named_fields(self) -> dict[str, Source]:
        """The ``traits:`` (User, Group) or ``properties:`` (Track) mapping."""
        return getattr(self, self.OBJECT_FIELD)

    def targets(self) -> list[tuple[str, tuple[str, ...], Source]]:
        """Every explicit mapping as (sync field, path in the message, source), named fields first.

        ``traits: {plan: plan}`` gives ("traits.plan", ("traits", "plan"), "plan");
        ``mappings: {context.ip: ip}`` gives ("mappings.context.ip", ("context", "ip"), "ip").
        """
        named = [
            (f"{self.OBJECT_FIELD}.{name}", (self.OBJECT_FIELD, name), source)
            for name, source in self.named_fields.items()
        ]
        return named + [
            (f"mappings.{target}", parse_target(target), source) for target, source in self.mappings.items()
        ]

    @field_validator("mappings", check_fields=False)
    @classmethod
    def _targets(cls, mappings: dict[str, Source], info: ValidationInfo) -> dict[str, Source]:
        roots = (cls.OBJECT_FIELD, "context", "integrations")
        named = info.data.get(cls.OBJECT_FIELD) or {}
        problems = []
        seen: dict[tuple[str, ...], str] = {}
        for target, source in mappings.items():
            try:
                path = parse_target(target)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            problem = _target_problem(path, source, roots, named, cls.OBJECT_FIELD)
            if problem is None and path in seen:
                problem = f"is mapped twice: also as '{seen[path]}'"
            seen.setdefault(path, target)
            if problem:
                problems.append(f"target '{target}' {problem}")
        if problems:
            raise ValueError("; ".join(problems))
        return mappings


def _target_problem(
    path: tuple[str, ...], source: Source, roots: tuple[str, ...], named: dict[str, Any], object_field: str
) -> str | None:
    """Why a mapping target cannot be used, or None."""
    root = path[0]
    if root in MESSAGE_FIELDS_SET_BY_SEGSYNC:
        return f"would overwrite '{root}', which is set by {MESSAGE_FIELDS_SET_BY_SEGSYNC[root]}"
    if root not in roots:
        hint = " (track messages have properties, not traits; context.traits is allowed)" * (root == "traits")
        return f"is not a field this message carries: start it with {', '.join(roots)}{hint}"
    if path[:2] in RESERVED_TARGETS:
        return f"is reserved: {RESERVED_TARGETS[path[:2]]}"
    if len(path) == 2 and root == object_field and path[1] in named:
        return f"is mapped twice: also in {object_field}.{path[1]}"
    if isinstance(source, Value):
        if len(path) == 1 and not isinstance(source.value, dict):
            return f"takes a whole object, so a constant there must be an object, not {source.value!r}"
        if (
            root == "integrations"
            and len(path) == 1
            and not all(_integration_setting(v) for v in source.value.values())
        ):
            return "must map each destination to true, false or an options object"
        if root == "integrations" and len(path) == 2 and not _integration_setting(source.value):
            return f"must be true, false or an options object, not {source.value!r}"
    return None


RemovalPolicy = Literal["ignore", "clear"]
"""What a User or Group sync sends for a key that left the model: nothing, or its traits as null."""
ON_REMOVAL_HELP = (
    "what a key that leaves the model sends: ignore (default) nothing; clear an identify/group whose traits "
    "are all null"
)
MAX_REMOVED_SHARE_HELP = (
    "removals over this share of the keys delivered before fail the run instead (default 0.5; "
    "--allow-mass-removal sends them)"
)
CHANGES_ONLY = "guards the removals of behavior: changes"


class ChangeEvents(Model):
    """The track event a ``behavior: changes`` sync sends for each kind of change; a kind it does not name
    sends nothing (its rows are still recorded as delivered)."""

    added: str | None = Field(default=None, min_length=1, description="a key entered the model")
    changed: str | None = Field(default=None, min_length=1, description="a key's mapped values changed")
    removed: str | None = Field(
        default=None, min_length=1, description="a key left the model (carries the values last delivered)"
    )

    @model_validator(mode="after")
    def _some(self) -> ChangeEvents:
        named = self.model_dump(exclude_none=True)
        if not named:
            raise ValueError("name at least one event: added, changed or removed")
        for kind, name in named.items():
            if not name.strip():
                raise ValueError(f"the '{kind}' event name must be non-empty text")
        return self


# Fields several sync objects share, each declared once: its type, default, limits and description.
Traits = Annotated[dict[str, Source], Field(default_factory=dict, description="trait name → source")]
Mappings = Annotated[dict[str, Source], Field(default_factory=dict, description=_MAPPINGS_TEXT)]
AllTraits = Annotated[bool, Field(default=False, description="every model column the sync does not use is a trait")]
Naming = Annotated[Normalization, Field(default="none", description=_NORMALIZATION_TEXT)]
Nulls = Annotated[NullPolicy, Field(default="omit", description=_NULL_VALUES_TEXT)]
OnRemoval = Annotated[RemovalPolicy | None, Field(default=None, description=ON_REMOVAL_HELP)]
RemovedShare = Annotated[float | None, Field(default=None, gt=0, le=1, description=MAX_REMOVED_SHARE_HELP)]


def _check_removal_guard(sync: UserSync | GroupSync) -> None:
    """``max_removed_share`` guards the removals ``on_removal: clear`` sends: alone it would guard nothing."""
    if sync.max_removed_share is not None and sync.on_removal != "clear":
        raise ValueError("'max_removed_share' guards the removals of on_removal: clear; this sync sends none")


class UserSync(SyncBase):
    """User: one ``identify`` per row, Update or Create, keyed on userId or anonymousId."""

    object: Literal["user"]
    behavior: Literal["update_or_create"] = "update_or_create"
    key: str = Field(min_length=1, description="the column that identifies the user")
    key_field: Literal["userId", "anonymousId"] = Field(default="userId", description="the field the key fills")
    traits: Traits
    mappings: Mappings
    sync_all_properties: AllTraits
    normalization: Naming
    null_values: Nulls
    on_removal: OnRemoval
    max_removed_share: RemovedShare

    @model_validator(mode="after")
    def _removals(self) -> UserSync:
        _check_removal_guard(self)
        return self


class GroupSync(SyncBase):
    """Group: one ``group`` per row, Update or Create, tying a user to a group (an account, a team)."""

    object: Literal["group"]
    behavior: Literal["update_or_create"] = "update_or_create"
    key: str = Field(min_length=1, description="a column unique per row; drives the messageId")
    group_id: str | None = Field(default=None, description="the groupId column (default: the key)")
    user_id: str | None = Field(default=None, description=_USER_ID_TEXT)
    anonymous_id: str | None = Field(default=None, description=_ANONYMOUS_ID_TEXT)
    traits: Traits
    mappings: Mappings
    sync_all_properties: AllTraits
    normalization: Naming
    null_values: Nulls
    on_removal: OnRemoval
    max_removed_share: RemovedShare

    @property
    def group_column(self) -> str:
        return self.group_id or self.key

    @model_validator(mode="after")
    def _one_identity(self) -> GroupSync:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("a group sync needs 'user_id' or 'anonymous_id' (a column)")
        _check_removal_guard(self)
        return self


class TrackSync(SyncBase):
    """Track event: one ``track`` per row, Append, keyed on a unique event key."""

    OBJECT_FIELD: ClassVar[str] = "properties"

    object: Literal["track"]
    behavior: Literal["append", "changes"] = Field(
        default="append",
        description="append: one event per new row; changes: an event per key added, changed or removed (events)",
    )
    key: str = Field(min_length=1, description="a column unique per event (append) or per row (changes)")
    event: Source | None = Field(
        default=None, description="append: the event's name: a column, or {value: Order Completed}"
    )
    events: ChangeEvents | None = Field(default=None, description="changes: the event sent for each kind of change")
    user_id: str | None = Field(default=None, description=_USER_ID_TEXT)
    anonymous_id: str | None = Field(default=None, description=_ANONYMOUS_ID_TEXT)
    timestamp: str | None = Field(
        default=None,
        description="the column saying when it happened; a null or unreadable value rejects the row (changes: for "
        "added and changed rows; without it, when the run found the change)",
    )
    cursor: str | None = Field(
        default=None,
        description=("a column that only grows (a load time): later runs scan only rows at or past the last one"),
    )
    properties: dict[str, Source] = Field(default_factory=dict, description="property name → source")
    mappings: Mappings
    sync_all_properties: bool = Field(
        default=False, description="every model column the sync does not use is a property"
    )
    normalization: Naming
    null_values: Nulls
    max_removed_share: RemovedShare

    @field_validator("event")
    @classmethod
    def _event_name(cls, event: Source) -> Source:
        if isinstance(event, Value) and not (isinstance(event.value, str) and event.value.strip()):
            raise ValueError(f"a constant event name must be non-empty text, not {event.value!r}")
        return event

    @model_validator(mode="after")
    def _one_identity(self) -> TrackSync:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("a track sync needs 'user_id' or 'anonymous_id' (a column)")
        return self

    @model_validator(mode="after")
    def _behavior(self) -> TrackSync:
        if self.behavior == "append":
            if self.event is None:
                raise ValueError("a track sync needs 'event' (a column or {value: NAME})")
            for field, why in (
                ("events", "names the events of behavior: changes"),
                ("max_removed_share", CHANGES_ONLY),
            ):
                if getattr(self, field) is not None:
                    raise ValueError(f"'{field}' {why}; an append sync sends one 'event' per new row")
            return self
        if self.events is None:
            raise ValueError("a changes sync needs 'events': {added: NAME, changed: NAME, removed: NAME} (any of them)")
        if self.event is not None:
            raise ValueError("a changes sync names its events in 'events' ({added, changed, removed}), not 'event'")
        if self.cursor is not None:
            raise ValueError(
                "a changes sync compares the whole model with what was delivered: with a 'cursor', the rows it "
                "did not scan would look removed"
            )
        return self


AnySync = UserSync | TrackSync | GroupSync
Sync = Annotated[UserSync | TrackSync | GroupSync, Field(discriminator="object")]


class DbtProject(Model):
    """Where the project's dbt models are described: the manifest dbt writes (``target/manifest.json``)."""

    manifest: str = Field(min_length=1, description="path to dbt's manifest.json, relative to the project file")


NotificationEvent = Literal["failed", "abandoned", "rejected", "committed", "stale"]
"""What a notification can be about: a run's outcome, rejected rows over a threshold, or no success for long."""

SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$"


class RejectedThreshold(Model):
    """When a committed run's rejections are worth a message: over a share of the rows read, or a count."""

    share: float | None = Field(default=None, ge=0, le=1, description="rejected rows / rows read, e.g. 0.05")
    count: int | None = Field(default=None, ge=0, description="rejected rows")

    @model_validator(mode="after")
    def _some(self) -> RejectedThreshold:
        if self.share is None and self.count is None:
            raise ValueError("give 'share' (0.05 = 5% of the rows read) and/or 'count' (rows)")
        return self

    def exceeded(self, rejected: int, rows: int) -> bool:
        """Whether ``rejected`` of ``rows`` is over either limit."""
        over_count = self.count is not None and rejected > self.count
        over_share = self.share is not None and rows > 0 and rejected / rows > self.share
        return over_count or over_share


class StaleThreshold(Model):
    """How long a sync may go without a committed run before it counts as stale."""

    hours: float = Field(gt=0, description="hours without a committed run")


class Notification(Model):
    """One destination for messages about runs, and the events it wants.

    ``webhook`` is a Slack-compatible incoming webhook (its URL is a secret); ``sns`` a topic the stack
    allows; ``email`` an address subscribed to the stack's notification topic.
    """

    webhook: SecretRef | None = Field(
        default=None, description="where the webhook URL is: {env: NAME} or {secret: NAME}"
    )
    sns: str | None = Field(
        default=None, pattern=SNS_TOPIC_ARN, description="an SNS topic ARN the stack may publish to"
    )
    email: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="an address on the stack's topic"
    )
    on: list[NotificationEvent] = Field(min_length=1, description="the events this destination is told about")
    syncs: list[str] | None = Field(default=None, description="only these syncs (default: every sync)")
    rejected: RejectedThreshold = Field(
        default=RejectedThreshold(share=0.05), description="with 'rejected' in on: the threshold (default share 0.05)"
    )
    stale: StaleThreshold = Field(
        default=StaleThreshold(hours=24), description="with 'stale' in on: hours without a committed run (default 24)"
    )

    @model_validator(mode="after")
    def _one_destination(self) -> Notification:
        given = [name for name in ("webhook", "sns", "email") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one destination: webhook, sns or email")
        for event in ("rejected", "stale"):
            if event in self.model_fields_set and event not in self.on:
                raise ValueError(f"'{event}' sets a threshold, but '{event}' is not in 'on'")
        return self

    def wants(self, event: str, sync: str) -> bool:
        return event in self.on and (self.syncs is None or sync in self.syncs)

    @property
    def destination(self) -> str:
        """The destination as logs and messages may name it: never a webhook's URL."""
        if self.webhook is not None:
            where = f"env {self.webhook.env}" if self.webhook.env else f"secret {self.webhook.secret}"
            return f"webhook ({where})"
        return f"SNS topic {self.sns}" if self.sns else f"email {self.email}"


class Project(Model):
    """A project file: named connections and the syncs between them."""

    version: Literal[1] = Field(default=1, description="the file format's version")
    connections: dict[str, Connection] = Field(description="warehouses and Segment sources, by name")
    syncs: list[Sync] = Field(description="each from a warehouse connection (source) to a Segment one (destination)")
    dbt: DbtProject | None = Field(default=None, description="the dbt manifest that {dbt: MODEL} models resolve in")
    notifications: list[Notification] = Field(default_factory=list, description="who hears about runs, and when")

    @model_validator(mode="after")
    def _references(self) -> Project:
        seen: set[str] = set()
        for sync in self.syncs:
            if sync.name in seen:
                raise ValueError(f"sync '{sync.name}' is defined twice")
            seen.add(sync.name)
            source = self.connections.get(sync.source)
            if not isinstance(source, WAREHOUSE_CONNECTIONS):
                raise ValueError(f"sync '{sync.name}': source '{sync.source}' is not a warehouse connection")
            destination = self.connections.get(sync.destination)
            if not isinstance(destination, SegmentConnection):
                raise ValueError(f"sync '{sync.name}': destination '{sync.destination}' is not a segment connection")
        for number, notification in enumerate(self.notifications, start=1):
            unknown = sorted(set(notification.syncs or ()) - seen)
            if unknown:
                raise ValueError(f"notification #{number}: no sync named {', '.join(map(repr, unknown))}")
        return self

    def sync(self, name: str) -> AnySync:
        for sync in self.syncs:
            if sync.name == name:
                return sync
        raise ConfigError(f"no sync named '{name}' (have: {', '.join(s.name for s in self.syncs)})")


SYNC_ADAPTER: TypeAdapter[AnySync] = TypeAdapter(Sync)
CONNECTION_ADAPTER: TypeAdapter[Any] = TypeAdapter(Connection)


def parse_sync(data: dict[str, Any]) -> AnySync:
    """Validate one sync item (as read from DynamoDB), naming the sync and the field on failure."""
    try:
        return SYNC_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"sync '{data.get('name', '?')}': {describe(exc)}") from None


def parse_connection(name: str, data: dict[str, Any]) -> Any:
    """Validate one connection item, naming it on failure."""
    try:
        return CONNECTION_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"connection '{name}': {describe(exc)}") from None


class _Notifications(Model):
    notifications: list[Notification]


def parse_notifications(data: Any) -> list[Notification]:
    """Validate the notifications item (as read from DynamoDB), naming the notification and field on failure."""
    try:
        return _Notifications.model_validate({"notifications": data}).notifications
    except ValidationError as exc:
        raise ConfigError(f"project notifications: {describe(exc)}") from None


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (true/false only), as editors' YAML language server reads the file.

    Under PyYAML's YAML 1.1 rules ``on: [failed]`` would be the key True, and ``{value: no}`` False.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str) -> Any:
    """Parse a project file's YAML (1.2 booleans)."""
    # A SafeLoader subclass: no arbitrary Python objects.
    return yaml.load(text, Loader=_Yaml12Loader)


def load_project(path: str | Path) -> Project:
    """Read and validate a project file; every problem names the sync (or connection) and field.

    dbt models (``model: {dbt: NAME}``) come back resolved to the relation the project's manifest names.
    """
    path = Path(path)
    try:
        raw = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such project file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the project file: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'connections' and 'syncs'")
    try:
        project = Project.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc, raw)}") from None
    return _resolve_dbt(_resolve_paths(project, path.parent), path)


def _resolve_paths(project: Project, base: Path) -> Project:
    """DuckDB paths in a project file are relative to the file, as a reader would expect."""
    connections = {
        name: conn.model_copy(update={"path": str((base / Path(conn.path).expanduser()).resolve())})
        if isinstance(conn, DuckDBConnection)
        else conn
        for name, conn in project.connections.items()
    }
    return project.model_copy(update={"connections": connections})


def _resolve_dbt(project: Project, path: Path) -> Project:
    """Each ``{dbt: NAME}`` model with the relation the manifest names (the manifest is relative to the file)."""
    from segsync.dbt import Manifest

    named = [sync for sync in project.syncs if isinstance(sync.model, DbtModel)]
    for sync in named:
        if sync.model.relation is not None:
            raise ConfigError(
                f"{path}: sync '{sync.name}' field 'model.relation': segsync fills it in from the dbt manifest; "
                f"name the model only ({{dbt: {sync.model.dbt}}})"
            )
    if project.dbt is None:
        if named:
            raise ConfigError(
                f"{path}: sync '{named[0].name}' names dbt model '{named[0].model.dbt}', but the project has no "
                "dbt manifest: add dbt: {manifest: path/to/target/manifest.json}"
            )
        return project
    manifest_path = (path.parent / Path(project.dbt.manifest).expanduser()).resolve()
    manifest = Manifest.load(manifest_path)
    syncs = [
        sync.model_copy(
            update={"model": sync.model.model_copy(update={"relation": manifest.relation(sync.model.dbt, sync.name)})}
        )
        if isinstance(sync.model, DbtModel)
        else sync
        for sync in project.syncs
    ]
    return project.model_copy(update={"syncs": syncs, "dbt": DbtProject(manifest=str(manifest_path))})


def describe(exc: ValidationError, raw: Any = None) -> str:
    """Turn pydantic's errors into lines that say which sync and which field, for people."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append(str(err.get("ctx", {}).get("discriminator", "")).strip("'"))  # "object", "type"
        where = _where(loc, raw)
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def _where(loc: list[Any], raw: Any) -> str:
    if len(loc) >= 2 and loc[0] == "syncs" and isinstance(loc[1], int):
        name = "?"
        if isinstance(raw, dict) and isinstance(raw.get("syncs"), list) and loc[1] < len(raw["syncs"]):
            item = raw["syncs"][loc[1]]
            name = item.get("name", f"#{loc[1] + 1}") if isinstance(item, dict) else f"#{loc[1] + 1}"
        return f"sync '{name}' field '{_field_path(loc[2:], SYNC_TAGS) or '(whole sync)'}'"
    if len(loc) >= 2 and loc[0] == "notifications" and isinstance(loc[1], int):
        return f"notification #{loc[1] + 1} field '{_field_path(loc[2:], ()) or '(whole notification)'}'"
    if len(loc) >= 2 and loc[0] == "connections":
        return f"connection '{loc[1]}' field '{_field_path(loc[2:], CONNECTION_TAGS) or '(whole connection)'}'"
    if not loc:
        return "project"
    path = _field_path(loc, SYNC_TAGS)
    return f"field '{path}'" if path else ""


SYNC_TAGS = ("user", "track", "group")
CONNECTION_TAGS = ("duckdb", "snowflake", "postgres", "redshift", "bigquery", "databricks", "segment")
UNION_BRANCHES = ("constrained-str", "Value", "Column", "str", "sql", "dbt")


def _field_path(loc: list[Any], tags: tuple[str, ...]) -> str:
    """pydantic's location minus its bookkeeping: the union tag first, union branch names last."""
    parts = list(loc)
    if parts and parts[0] in tags:
        parts = parts[1:]
    # Drop the union branch: "traits.tier.Column.column" is traits.tier.column. (The last one only,
    # since a trait may itself be named "Value".)
    branches = [i for i, p in enumerate(parts) if i > 0 and p in UNION_BRANCHES]
    if branches:
        del parts[branches[-1]]
    return ".".join(str(p) for p in parts)

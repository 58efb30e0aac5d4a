"""The project file and sync items: one set of pydantic models for YAML and DynamoDB alike."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from segsync.errors import ConfigError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SEGMENT_HOSTS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}


class Model(BaseModel):
    """Strict base: an unknown field is a typo the user must hear about, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Model):
    """Where a secret comes from: an environment variable or a Secrets Manager secret (never inline)."""

    env: str | None = None
    secret: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.secret is None):
            raise ValueError(
                "give exactly one of 'env' (an environment variable) or 'secret' (a Secrets Manager name)"
            )
        return self


class DuckDBConnection(Model):
    """The embedded default warehouse: a DuckDB file."""

    type: Literal["duckdb"]
    path: str
    state_schema: str = "SEGSYNC"


class SnowflakeConnection(Model):
    """A Snowflake warehouse; credentials come from Secrets Manager or the environment."""

    type: Literal["snowflake"]
    account: str
    user: str
    warehouse: str | None = None
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    role: str | None = None
    credentials: SecretRef
    state_schema: str = "SEGSYNC"


WarehouseConnection = Annotated[DuckDBConnection | SnowflakeConnection, Field(discriminator="type")]


class SegmentConnection(Model):
    """A Segment source: its region (or an explicit API base) and where its write key lives."""

    type: Literal["segment"]
    region: Literal["us", "eu"] = "us"
    endpoint: str | None = None
    write_key: SecretRef
    events_per_second: int = Field(default=1000, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("endpoint must be an http(s) URL such as https://api.segment.io")
        return value.rstrip("/") if value else value

    @property
    def api_base(self) -> str:
        return self.endpoint or SEGMENT_HOSTS[self.region]


Connection = Annotated[
    DuckDBConnection | SnowflakeConnection | SegmentConnection, Field(discriminator="type")
]


class Value(Model):
    """A constant in place of a column."""

    value: Any

    @field_validator("value")
    @classmethod
    def _json(cls, value: Any) -> Any:
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"a constant must be plain JSON: {exc}") from None
        return value


Source = Annotated[str, Field(min_length=1)] | Value
"""A mapping source: a column name, or ``{value: ...}`` for a constant."""


class SyncBase(Model):
    """What every sync has: where rows come from, where they go, and when."""

    name: str = Field(pattern=NAME_PATTERN)
    enabled: bool = True
    source: str = Field(description="name of a warehouse connection")
    destination: str = Field(description="name of a Segment connection")
    model: str = Field(min_length=1, description="SQL run against the warehouse")
    schedule: str | None = Field(default=None, pattern=r"^(rate|cron)\(.+\)$")


class UserSync(SyncBase):
    """User: one ``identify`` per row, Update or Create, keyed on userId or anonymousId."""

    object: Literal["user"]
    behavior: Literal["update_or_create"] = "update_or_create"
    key: str = Field(min_length=1, description="the column that identifies the user")
    key_field: Literal["userId", "anonymousId"] = "userId"
    traits: dict[str, Source] = Field(default_factory=dict)


class TrackSync(SyncBase):
    """Track event: one ``track`` per row, Append, keyed on a unique event key."""

    object: Literal["track"]
    behavior: Literal["append"] = "append"
    key: str = Field(min_length=1, description="a column unique per event; drives the messageId")
    event: Source
    user_id: str | None = None
    anonymous_id: str | None = None
    timestamp: str | None = None
    properties: dict[str, Source] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_identity(self) -> TrackSync:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("a track sync needs 'user_id' or 'anonymous_id' (a column)")
        return self


Sync = Annotated[UserSync | TrackSync, Field(discriminator="object")]


class Project(Model):
    """A project file: named connections and the syncs between them."""

    version: Literal[1] = 1
    connections: dict[str, Connection]
    syncs: list[Sync]

    @model_validator(mode="after")
    def _references(self) -> Project:
        seen: set[str] = set()
        for sync in self.syncs:
            if sync.name in seen:
                raise ValueError(f"sync '{sync.name}' is defined twice")
            seen.add(sync.name)
            source = self.connections.get(sync.source)
            if not isinstance(source, DuckDBConnection | SnowflakeConnection):
                raise ValueError(f"sync '{sync.name}': source '{sync.source}' is not a warehouse connection")
            destination = self.connections.get(sync.destination)
            if not isinstance(destination, SegmentConnection):
                raise ValueError(
                    f"sync '{sync.name}': destination '{sync.destination}' is not a segment connection"
                )
        return self

    def sync(self, name: str) -> UserSync | TrackSync:
        for sync in self.syncs:
            if sync.name == name:
                return sync
        raise ConfigError(f"no sync named '{name}' (have: {', '.join(s.name for s in self.syncs)})")


SYNC_ADAPTER: TypeAdapter[UserSync | TrackSync] = TypeAdapter(Sync)
CONNECTION_ADAPTER: TypeAdapter[Any] = TypeAdapter(Connection)


def parse_sync(data: dict[str, Any]) -> UserSync | TrackSync:
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


def load_project(path: str | Path) -> Project:
    """Read and validate a project file; every problem names the sync (or connection) and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
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
    return _resolve_paths(project, path.parent)


def _resolve_paths(project: Project, base: Path) -> Project:
    """DuckDB paths in a project file are relative to the file, as a reader would expect."""
    connections = {
        name: conn.model_copy(update={"path": str((base / Path(conn.path).expanduser()).resolve())})
        if isinstance(conn, DuckDBConnection)
        else conn
        for name, conn in project.connections.items()
    }
    return project.model_copy(update={"connections": connections})


def describe(exc: ValidationError, raw: Any = None) -> str:
    """Turn pydantic's errors into lines that say which sync and which field, for people."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = _where(loc, raw)
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def _where(loc: list[Any], raw: Any) -> str:
    if len(loc) >= 2 and loc[0] == "syncs" and isinstance(loc[1], int):
        name = "?"
        if isinstance(raw, dict) and isinstance(raw.get("syncs"), list) and loc[1] < len(raw["syncs"]):
            item = raw["syncs"][loc[1]]
            name = item.get("name", f"#{loc[1] + 1}") if isinstance(item, dict) else f"#{loc[1] + 1}"
        return f"sync '{name}' field '{_field_path(loc[2:], SYNC_TAGS) or '(whole sync)'}'"
    if len(loc) >= 2 and loc[0] == "connections":
        return (
            f"connection '{loc[1]}' field '{_field_path(loc[2:], CONNECTION_TAGS) or '(whole connection)'}'"
        )
    if not loc:
        return "project"
    return f"field '{_field_path(loc, SYNC_TAGS)}'"


SYNC_TAGS = ("user", "track")
CONNECTION_TAGS = ("duckdb", "snowflake", "segment")
UNION_BRANCHES = ("constrained-str", "Value", "str")


def _field_path(loc: list[Any], tags: tuple[str, ...]) -> str:
    """pydantic's location minus its bookkeeping: the union tag first, union branch names last."""
    parts = list(loc)
    if parts and parts[0] in tags:
        parts = parts[1:]
    while parts and parts[-1] in UNION_BRANCHES:
        parts = parts[:-1]
    return ".".join(str(p) for p in parts)

"""Typed settings per function, read from the environment on first use (never at import)."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from segsync.endpoints import DEFAULT_SECRETS_PREFIX, parse_allowed
from segsync.errors import ConfigError
from segsync.warehouse.policy import DEFAULT_SECRETS_PREFIX as WAREHOUSE_SECRETS_PREFIX
from segsync.warehouse.policy import parse_allowed_hosts
from segsync.waves import MAX_DELAY_S


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Any:
        """Validate the function's environment; a missing variable names itself."""
        environ = dict(os.environ if environ is None else environ)
        values = {name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{cls.__name__}: {problems}") from None


class PlannerSettings(_EnvSettings):
    """The planner's environment: where sync config, run bookkeeping and chunks live."""

    syncs_table: str = Field(min_length=1)
    runs_table: str = Field(min_length=1)
    queue_url: str = Field(min_length=1)
    chunk_rows: int = Field(default=1_000, gt=0, le=2_500)
    chunk_bytes: int = Field(default=1_000_000, ge=64_000, le=1_048_576)
    run_lock_seconds: int = Field(default=7_200, ge=60)
    """How long a run keeps its lock without progress: a run that delivers nothing for this long is abandoned."""
    plan_ahead_seconds: int = Field(default=300, gt=0, le=MAX_DELAY_S)
    """At most this many seconds of the destination's pace wait in the queue; each tick tops it up."""
    segment_events_per_second: int | None = Field(default=None, gt=0)
    """The stack's pace cap (the sender's own setting): chunks are cut to a second of the pace at most."""
    notification_topic_arn: str | None = None
    """The stack's own SNS topic: email notifications go there, and SNS notifications may name it."""
    extra_notification_topic_arn: str = ""
    """One more SNS topic notifications may name (a stack parameter; empty: none)."""
    notify_timeout_s: float = Field(default=5.0, gt=0, le=30)
    """How long a notification webhook may take to answer: a slow one never holds a run longer."""
    project_file: str = "segsync.yml"
    """The project file name notifications quote in the command that shows more."""
    aws_lambda_function_name: str | None = None
    """Set by Lambda itself: the tick invokes this function once per due sync."""
    warehouse_allowed_hosts: tuple[str, ...] = ()
    """Hosts besides the warehouse vendors' own that connections may name (comma-separated host or host:port)."""
    warehouse_secrets_prefix: str = Field(default=WAREHOUSE_SECRETS_PREFIX, min_length=1)
    """The only Secrets Manager names warehouse credentials may come from (the template's WarehouseSecretsPrefix)."""

    @field_validator("warehouse_allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        return parse_allowed_hosts(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lock_outlives_a_wave(self) -> PlannerSettings:
        # A wave releases its chunks over plan_ahead_seconds: a lock shorter than that would lapse before
        # the last of them could be delivered, with no fault anywhere.
        if self.run_lock_seconds < 2 * self.plan_ahead_seconds:
            raise ValueError(
                f"RUN_LOCK_SECONDS ({self.run_lock_seconds}) must be at least twice PLAN_AHEAD_SECONDS "
                f"({self.plan_ahead_seconds}), or runs would be abandoned while their chunks wait to be released"
            )
        return self


class SenderSettings(_EnvSettings):
    """The sender's environment: run bookkeeping, the pace cap, and where it may post with which keys."""

    runs_table: str = Field(min_length=1)
    segment_events_per_second: int | None = Field(default=None, gt=0)
    """The install's ceiling for any destination's events/s (Segment's budget is per workspace)."""
    segment_read_timeout_s: float = Field(default=15.0, gt=0, le=300)
    """How long to wait for Segment's answer to a batch before retrying it (a duplicate Segment dedupes)."""
    segment_allowed_endpoints: tuple[str, ...] = ()
    """API bases besides Segment's own hosts that chunks may name (comma-separated); empty in AWS by default."""
    segment_secrets_prefix: str = Field(default=DEFAULT_SECRETS_PREFIX, min_length=1)
    """The only Secrets Manager names a chunk's write key may come from (the template's SegmentSecretsPrefix)."""

    @field_validator("segment_allowed_endpoints", mode="before")
    @classmethod
    def _api_bases(cls, value: Any) -> Any:
        return parse_allowed(value) if isinstance(value, str) else value


class WebhookSettings(_EnvSettings):
    """The dbt Cloud webhook's environment: the planner it starts, its secret, dbt Cloud's API."""

    planner_function: str = Field(min_length=1)
    dbt_cloud_secret: str = Field(min_length=1)
    """Secrets Manager name of {"webhook_secret": ..., "api_token": ...}."""
    dbt_cloud_api: str = Field(default="https://cloud.getdbt.com", pattern=r"^https?://[^/\s]+/?$")
    """The account's dbt Cloud host (cloud.getdbt.com, emea.dbt.com, ACCOUNT_PREFIX.us1.dbt.com, ...)."""
    webhook_max_age_s: int = Field(default=300, ge=30, le=3600)
    """A delivery signed longer ago than this is refused as a replay."""


@cache
def aws_resource(service: str, endpoint: str | None, region: str | None) -> Any:
    """One boto3 resource per (service, endpoint, region): created once per warm container."""
    return boto3.resource(service, endpoint_url=endpoint, region_name=region)


@cache
def aws_client(service: str, endpoint: str | None, region: str | None) -> Any:
    """One boto3 client per (service, endpoint, region)."""
    return boto3.client(service, endpoint_url=endpoint, region_name=region)


def aws_endpoint() -> str | None:
    """moto's server in local mode; None (the real AWS endpoints) in Lambda."""
    return os.environ.get("AWS_ENDPOINT_URL") or None


def dynamodb_table(name: str) -> Any:
    return aws_resource("dynamodb", aws_endpoint(), os.environ.get("AWS_DEFAULT_REGION")).Table(name)


def sqs_client() -> Any:
    return aws_client("sqs", aws_endpoint(), os.environ.get("AWS_DEFAULT_REGION"))


def sns_client() -> Any:
    return aws_client("sns", aws_endpoint(), os.environ.get("AWS_DEFAULT_REGION"))

"""dbt Cloud's "job run completed" webhook → start the syncs that read the models the job built.

dbt Cloud signs each delivery: ``Authorization`` holds the hex HMAC-SHA256 of the raw body, keyed with
the webhook's secret token. An unsigned request is answered 401, a forged or stale one 403, with nothing
said about why. The payload names the run, not its models, so the models come from the run's own
``run_results.json`` (dbt Cloud's Administrative API, one per dbt step): a sync runs when the model it
reads was rebuilt, whichever job rebuilt it. The planner, not this function, maps models to syncs: this
function may only read its own secret and invoke the planner.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from segsync.dbt import built_models
from segsync.errors import SecretError, SegsyncError
from segsync.observability import logger
from segsync.settings import WebhookSettings, aws_client, aws_endpoint

COMPLETED = "job.run.completed"
SUCCESS = "Success"
API_TIMEOUT_S = 3.0
ANSWER_WITHIN_S = 8.0
"""dbt Cloud gives up on a webhook after 10 s (and retries): answer before then."""
FUTURE_SKEW_S = 60
DBT_STEP = "Invoke dbt"
"""dbt Cloud names each step that runs a dbt command "Invoke dbt with `dbt ...`"; only those have results."""


class WebhookSecret(BaseModel):
    """The JSON secret the webhook function reads: dbt Cloud's signing token and an API token to read runs."""

    model_config = ConfigDict(frozen=True)

    webhook_secret: str = Field(min_length=1)
    api_token: str = Field(min_length=1)


class DbtCloudError(SegsyncError):
    """dbt Cloud's API did not say which models a run built."""


@dataclass(frozen=True)
class Answer:
    """What the function URL answers."""

    status: int
    body: dict[str, Any]

    def as_lambda(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": {"Content-Type": "application/json"},
            "body": orjson.dumps(self.body).decode(),
        }


UNSIGNED = Answer(401, {"message": "Unauthorized"})
FORBIDDEN = Answer(403, {"message": "Forbidden"})


def signature(body: bytes, key: str) -> str:
    """The signature dbt Cloud sends for ``body``: hex HMAC-SHA256 keyed with the webhook's secret token."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, authorization: str, key: str) -> bool:
    """Whether ``authorization`` is the body's signature (compared in constant time)."""
    return hmac.compare_digest(signature(body, key).encode(), authorization.strip().lower().encode())


class DbtCloudApi:
    """The two reads of dbt Cloud's Administrative API (v2) that say which models a run built."""

    def __init__(self, base: str, token: str, deadline: float, session: requests.Session | None = None) -> None:
        self._base = base.rstrip("/")
        self._token = token
        self._deadline = deadline
        self._session = session or requests.Session()

    def built_models(self, account_id: str, run_id: str) -> set[str]:
        """Models every dbt step of the run built successfully (its run_results.json, step by step)."""
        run = self._get(f"/api/v2/accounts/{account_id}/runs/{run_id}/", {"include_related": '["run_steps"]'})
        steps = [s for s in (run or {}).get("data", {}).get("run_steps") or [] if DBT_STEP in str(s.get("name"))]
        artifact = f"/api/v2/accounts/{account_id}/runs/{run_id}/artifacts/run_results.json"
        if not steps:
            results = self._get(artifact, {})
            return built_models(results) if results else set()
        models: set[str] = set()
        for step in steps:
            results = self._get(artifact, {"step": str(step["index"])})
            if results:
                models |= built_models(results)
        return models

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        """GET a JSON document; None when dbt Cloud has none (404: a step without results)."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DbtCloudError("out of time reading dbt Cloud's API")
        try:
            response = self._session.get(
                self._base + path,
                params=params,
                headers={"Authorization": f"Token {self._token}", "Accept": "application/json"},
                timeout=min(API_TIMEOUT_S, remaining),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise DbtCloudError(f"dbt Cloud's API: {type(exc).__name__}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DbtCloudError(f"dbt Cloud's API answered HTTP {response.status_code} for {path}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise DbtCloudError(f"dbt Cloud's API answered something that is not JSON for {path}") from None


def read_secret(name: str) -> WebhookSecret:
    """The webhook's secret from Secrets Manager (cached for a few minutes by Powertools)."""
    from aws_lambda_powertools.utilities import parameters
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = parameters.get_secret(name, max_age=300)
    except (parameters.exceptions.GetParameterError, ClientError, BotoCoreError) as exc:
        problem = type(exc).__name__
        raise SecretError(f"dbt Cloud webhook: cannot read Secrets Manager secret '{name}' ({problem})") from None
    try:
        return WebhookSecret.model_validate_json(value)
    except ValidationError:
        raise SecretError(
            f"dbt Cloud webhook: secret '{name}' must be JSON with webhook_secret and api_token"
        ) from None


def handle(
    event: dict[str, Any],
    settings: WebhookSettings,
    *,
    invoke: Callable[[dict[str, Any]], None],
    secret: Callable[[str], WebhookSecret] = read_secret,
    clock: Callable[[], float] = time.time,
    session: requests.Session | None = None,
) -> Answer:
    """Verify a dbt Cloud delivery and, for a successful run, ask the planner to start the syncs it feeds."""
    deadline = time.monotonic() + ANSWER_WITHIN_S
    if (event.get("requestContext") or {}).get("http", {}).get("method", "POST") != "POST":
        return Answer(405, {"message": "Method Not Allowed"})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    authorization = headers.get("authorization", "")
    if not authorization:
        logger.warning("webhook refused", extra={"reason": "unsigned"})
        return UNSIGNED
    body = _body(event)
    if body is None:
        return Answer(400, {"message": "Bad Request"})
    try:
        keys = secret(settings.dbt_cloud_secret)
    except SecretError as exc:
        logger.error("webhook secret unavailable", extra={"error": str(exc)})
        return Answer(500, {"message": "Internal Server Error"})
    if not signed(body, authorization, keys.webhook_secret):
        logger.warning("webhook refused", extra={"reason": "signature does not match"})
        return FORBIDDEN
    try:
        payload = orjson.loads(body)
        sent_at = datetime.fromisoformat(str(payload["timestamp"])).timestamp()
        event_type, data = payload["eventType"], payload["data"]
        account_id, run_id = str(payload["accountId"]), str(data["runId"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        logger.warning("webhook refused", extra={"reason": "not a dbt Cloud webhook payload"})
        return Answer(400, {"message": "Bad Request"})
    age = clock() - sent_at
    if age > settings.webhook_max_age_s or age < -FUTURE_SKEW_S:
        logger.warning("webhook refused", extra={"reason": "stale", "age_s": round(age)})
        return FORBIDDEN
    where = {"dbt_cloud_run": run_id, "job": str(data.get("jobId", ""))}
    if event_type != COMPLETED or data.get("runStatus") != SUCCESS:
        logger.info("webhook ignored", extra={**where, "event": event_type, "status": data.get("runStatus")})
        return Answer(200, {"started": False})
    api = DbtCloudApi(settings.dbt_cloud_api, keys.api_token, deadline, session)
    try:
        models = api.built_models(account_id, run_id)
    except DbtCloudError as exc:
        # dbt Cloud retries a failed delivery: let it, rather than start nothing for good.
        logger.error("dbt Cloud run not read", extra={**where, "error": str(exc)})
        return Answer(502, {"message": "Bad Gateway"})
    if models:
        invoke({"trigger": f"dbt-cloud run {run_id}", "dbt_models": sorted(models)})
    logger.info("webhook accepted", extra={**where, "models": len(models)})
    return Answer(200, {"started": bool(models), "models": len(models)})


def respond(event: dict[str, Any], settings: WebhookSettings) -> dict[str, Any]:
    """The function URL's answer to one request; the planner is invoked asynchronously."""
    client = aws_client("lambda", aws_endpoint(), os.environ.get("AWS_DEFAULT_REGION"))

    def invoke(planner_event: dict[str, Any]) -> None:
        client.invoke(
            FunctionName=settings.planner_function, InvocationType="Event", Payload=orjson.dumps(planner_event)
        )

    return handle(event, settings, invoke=invoke).as_lambda()


def _body(event: dict[str, Any]) -> bytes | None:
    """The raw body as dbt Cloud signed it (a function URL base64-encodes bodies it deems binary)."""
    raw = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return raw.encode()
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None

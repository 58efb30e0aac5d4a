"""A deployed segsync stack as the CLI sees it: its Outputs, its syncs table, and starting a run.

Adapters (CloudFormation, DynamoDB, Lambda) and the pure diff between a project file and the table.
Credentials and region come from the usual AWS chain (``AWS_PROFILE``, ``AWS_REGION``, ...).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import orjson
from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from segsync.config import Project
from segsync.errors import ConfigError, SegsyncError
from segsync.store import CONNECTION_KIND, PROJECT_KIND, SYNC_KIND, from_item, project_item_bodies, to_item

REQUIRED_OUTPUTS = {
    "syncs_table": "SyncsTableName",
    "runs_table": "RunsTableName",
    "planner_function": "PlannerFunctionName",
}
OPTIONAL_OUTPUTS = {"planner_log_group": "PlannerLogGroupName", "dashboard_url": "DashboardUrl"}
KINDS = (CONNECTION_KIND, SYNC_KIND, PROJECT_KIND)

ItemKey = tuple[str, str]
"""(kind, name): the syncs table's key."""


# ---------------------------------------------------------------------------------------- boundary


wait_clock = time.monotonic
wait_sleep = time.sleep
"""How ``run --wait`` measures and passes time; tests replace both to follow a run without waiting."""


def aws_client(service: str) -> Any:
    """A boto3 client from the default chain; the one seam tests replace (e.g. with a Stubber)."""
    return boto3.client(service)


def aws_table(name: str) -> Any:
    return boto3.resource("dynamodb").Table(name)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn boto's exceptions into one line that says what segsync was doing (never a traceback)."""
    try:
        yield
    except NoRegionError:
        raise SegsyncError(f"{what}: no AWS region; set AWS_REGION (or a profile's region)") from None
    except NoCredentialsError:
        raise SegsyncError(f"{what}: no AWS credentials; set AWS_PROFILE or sign in (aws sso login)") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise SegsyncError(f"{what}: {error.get('Code', 'error')}: {error.get('Message', '')}") from None
    except BotoCoreError as exc:
        raise SegsyncError(f"{what}: {exc}") from None


# ---------------------------------------------------------------------------------------- stack


@dataclass(frozen=True)
class StackOutputs:
    """The Outputs of a segsync stack that the CLI needs."""

    stack: str
    syncs_table: str
    runs_table: str
    planner_function: str
    planner_log_group: str | None = None
    dashboard_url: str | None = None


def stack_outputs(stack: str) -> StackOutputs:
    """Read a stack's Outputs with DescribeStacks.

    Raises:
        ConfigError: no such stack, or it lacks an output segsync needs (not a segsync stack, or not
            finished deploying).
        SegsyncError: AWS refused (credentials, permissions, region).
    """
    with aws_errors(f"stack '{stack}'"):
        client = aws_client("cloudformation")
        try:
            [described] = client.describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
                where = client.meta.region_name
                raise ConfigError(f"stack '{stack}' does not exist in {where} (is AWS_REGION right?)") from None
            raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    missing = [key for key in REQUIRED_OUTPUTS.values() if key not in outputs]
    if missing:
        raise ConfigError(
            f"stack '{stack}' ({described.get('StackStatus', '?')}) has no output {', '.join(missing)}: "
            "is it a segsync stack, deployed to the end?"
        )
    return StackOutputs(
        stack=stack,
        **{name: outputs[key] for name, key in REQUIRED_OUTPUTS.items()},
        **{name: outputs.get(key) for name, key in OPTIONAL_OUTPUTS.items()},
    )


# ---------------------------------------------------------------------------------------- syncs table


def project_items(project: Project) -> dict[ItemKey, dict[str, Any]]:
    """The items ``SyncStore.push`` writes for a project, as plain data (what the table would read back)."""
    items = {(item["kind"], item["name"]): item for item in project_item_bodies(project)}
    # Through DynamoDB's types and back, so a float or a dropped null compares as the table holds it.
    return {key: from_item(to_item(item)) for key, item in items.items()}


def table_items(table: Any) -> dict[ItemKey, dict[str, Any]]:
    """Every connection and sync item in the syncs table, as plain data."""
    items: dict[ItemKey, dict[str, Any]] = {}
    for kind in KINDS:
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("kind").eq(kind)}
        while True:
            page = table.query(**kwargs)
            for item in page["Items"]:
                items[(kind, item["name"])] = from_item(item)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return items


def delete_items(table: Any, keys: list[ItemKey]) -> None:
    with table.batch_writer() as batch:
        for kind, name in keys:
            batch.delete_item(Key={"kind": kind, "name": name})


@dataclass(frozen=True)
class Change:
    """An item the file changes: which top-level fields differ (values are not shown: they can be long)."""

    kind: str
    name: str
    fields: tuple[str, ...]


@dataclass
class PushPlan:
    """What pushing a project file would do to the syncs table."""

    added: list[ItemKey] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    removed: list[ItemKey] = field(default_factory=list)
    """In the table, not in the file: kept unless pruning."""
    unchanged: int = 0

    @property
    def writes(self) -> int:
        return len(self.added) + len(self.changed)


def plan_push(desired: dict[ItemKey, dict[str, Any]], current: dict[ItemKey, dict[str, Any]]) -> PushPlan:
    """Compare the file's items with the table's, connections first, then syncs, by name."""
    plan = PushPlan()
    for key in sorted(desired.keys() | current.keys(), key=lambda k: (KINDS.index(k[0]), k[1])):
        want, have = desired.get(key), current.get(key)
        if have is None:
            plan.added.append(key)
        elif want is None:
            plan.removed.append(key)
        elif want != have:
            fields = sorted(f for f in want.keys() | have.keys() if want.get(f) != have.get(f))
            plan.changed.append(Change(*key, tuple(fields)))
        else:
            plan.unchanged += 1
    return plan


# ---------------------------------------------------------------------------------------- runs


def start_run(
    function: str,
    sync: str,
    *,
    full_resync: bool,
    run_id: str,
    mark_synced: bool = False,
    allow_mass_removal: bool = False,
) -> str:
    """Invoke the planner asynchronously for one sync; returns the invocation's request id.

    The asynchronous invoke answers no run id, so the caller chooses it (``run_id``) and the planner
    records the run under it: ``segsync.follow`` then finds it in the runs table.
    """
    event = {"sync": sync, "full_resync": full_resync, "trigger": "manual", "run_id": run_id}
    if mark_synced:
        event["mark_synced"] = True
    if allow_mass_removal:
        event["allow_mass_removal"] = True
    with aws_errors(f"invoking planner '{function}'"):
        response = aws_client("lambda").invoke(
            FunctionName=function, InvocationType="Event", Payload=orjson.dumps(event)
        )
    if response.get("StatusCode") != 202:
        raise SegsyncError(f"invoking planner '{function}': Lambda answered {response.get('StatusCode')}")
    return response.get("ResponseMetadata", {}).get("RequestId", "")

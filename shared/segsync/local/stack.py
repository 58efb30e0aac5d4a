"""A local AWS: moto's server on loopback with the tables and queues the SAM template declares."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import orjson
import requests
from moto.core.model_instances import reset_model_data
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
SYNCS_TABLE = "segsync-syncs"
RUNS_TABLE = "segsync-runs"
QUEUE = "segsync-chunks"
DEAD_LETTER_QUEUE = "segsync-chunks-dlq"
MAX_RECEIVE_COUNT = 5
MAX_MESSAGE_BYTES = 1_048_576
VISIBILITY_TIMEOUT_S = 720


@dataclass(frozen=True)
class LocalStack:
    """Where the local resources are; ``env`` is what the handlers would get from Lambda."""

    endpoint: str | None
    queue_url: str
    dead_letter_queue_url: str
    env: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def table(self, name: str) -> Any:
        return boto3.resource("dynamodb", endpoint_url=self.endpoint, region_name=REGION).Table(name)

    def forget_tracked(self) -> None:
        """Drop the list moto keeps of every model object it ever built (for its dashboard), the copies it
        makes to answer each DynamoDB query included: a local run of a million rows would otherwise hold
        hundreds of MB of them. The tables and queues keep their own references."""
        reset_model_data()


def create_resources(
    endpoint: str | None, allowed_endpoints: Iterable[str] = (), allowed_hosts: Iterable[str] = ()
) -> LocalStack:
    """Create the syncs and runs tables, the chunk queue and its DLQ, shaped as in template.yaml.

    ``endpoint`` is moto's server; None means in-process moto (``mock_aws``) in tests.
    ``allowed_endpoints``: API bases besides Segment's own that the sender may post to (the stack's
    SegmentAllowedEndpoints; locally, the endpoints of the project being run). ``allowed_hosts``: hosts
    besides the warehouse vendors' own the planner may connect to (the stack's WarehouseAllowedHosts;
    locally, the hosts the project's warehouse connections name).
    """
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    for name, keys in ((SYNCS_TABLE, ("kind", "name")), (RUNS_TABLE, ("pk", "sk"))):
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
            KeySchema=[
                {"AttributeName": keys[0], "KeyType": "HASH"},
                {"AttributeName": keys[1], "KeyType": "RANGE"},
            ],
        )
    dynamodb.update_time_to_live(
        TableName=RUNS_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    sqs = session.client("sqs", endpoint_url=endpoint)
    dlq_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE, Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={
            "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
            "RedrivePolicy": orjson.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ).decode(),
        },
    )["QueueUrl"]
    env = {
        **({"AWS_ENDPOINT_URL": endpoint} if endpoint else {}),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "SYNCS_TABLE": SYNCS_TABLE,
        "RUNS_TABLE": RUNS_TABLE,
        "QUEUE_URL": queue_url,
        "SEGMENT_ALLOWED_ENDPOINTS": ",".join(allowed_endpoints),
        "WAREHOUSE_ALLOWED_HOSTS": ",".join(allowed_hosts),
        "POWERTOOLS_SERVICE_NAME": "segsync",
        "POWERTOOLS_METRICS_NAMESPACE": "segsync",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    return LocalStack(endpoint=endpoint, queue_url=queue_url, dead_letter_queue_url=dlq_url, env=env)


@cache
def moto_endpoint() -> str:
    """moto's server on 127.0.0.1 (never 0.0.0.0), started once per process on a free port.

    moto keeps its state per process, not per server, so one server serves every local stack of the
    process in turn (each starts from a reset). It runs in a daemon thread until the process ends:
    stopping it costs half a second (its serve loop polls for shutdown), once per local run.
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


@contextmanager
def local_stack(allowed_endpoints: Iterable[str] = (), allowed_hosts: Iterable[str] = ()) -> Iterator[LocalStack]:
    """A local AWS from empty (moto), with the template's resources, and the handlers' env exported."""
    endpoint = moto_endpoint()
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    saved = dict(os.environ)
    try:
        stack = create_resources(endpoint, allowed_endpoints, allowed_hosts)
        os.environ.update(stack.env)
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)

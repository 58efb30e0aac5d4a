"""Notifications under moto and over loopback HTTP: sent once per outcome, bounded in time, never leaking a URL."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator

import boto3
import orjson
import pytest

from segsync.config import Notification, Project
from segsync.local.stack import LocalStack
from segsync.notify import Notifier, Topics
from segsync.observability import logger as segsync_logger
from segsync.store import NotificationLog, RunStore, SyncStore

from ..http_fakes import serve, slack_ok

RUN = "20261201T101010Z-a1b2c3"
OTHER_RUN = "20261201T111010Z-d4e5f6"
TOPIC = "segsync-notifications"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What segsync logs, as text (Powertools' handler holds the stderr it found at import)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(segsync_logger.registered_formatter)
    logger = logging.getLogger("segsync")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


@pytest.fixture
def tables(stack: LocalStack):
    return SyncStore(stack.table(os.environ["SYNCS_TABLE"])), RunStore(stack.table(os.environ["RUNS_TABLE"]))


def _configure(tables, *notifications: dict, syncs: tuple[str, ...] = ("users",)) -> None:
    """Push a project holding ``notifications`` (and syncs named ``syncs``) into the syncs table."""
    project = Project.model_validate(
        {
            "connections": {
                "warehouse": {"type": "duckdb", "path": "w.duckdb"},
                "segment": {"type": "segment", "write_key": {"env": "SEGMENT_WRITE_KEY"}},
            },
            "syncs": [
                {
                    "name": name,
                    "object": "user",
                    "source": "warehouse",
                    "destination": "segment",
                    "model": "SELECT 1",
                    "key": "id",
                }
                for name in syncs
            ],
            "notifications": list(notifications),
        }
    )
    tables[0].push(project)


def _notifier(stack, tables, clock=time.time, timeout_s: float = 2.0, topics: Topics | None = None) -> Notifier:
    store, runs = tables
    log = NotificationLog(stack.table(os.environ["RUNS_TABLE"]))
    sns = lambda: boto3.client("sns")  # noqa: E731
    return Notifier(
        store, runs, log, project_file="segsync.yml", topics=topics, sns=sns, timeout_s=timeout_s, clock=clock
    )


def _failed_run(runs: RunStore, run_id: str = RUN, sync: str = "users") -> None:
    runs.start(sync, run_id, "manual")
    runs.failed(sync, run_id, f"sync '{sync}': model query failed: Catalog Error: Table with name nope does not exist!")


def test_a_failed_run_posts_one_message_naming_the_sync_and_the_error(stack, tables, monkeypatch):
    # Given a Slack-compatible webhook on loopback, configured through an environment variable
    with serve(slack_ok) as webhook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook.url + "/services/T0/B0/token")
        _configure(tables, {"webhook": {"env": "SLACK_WEBHOOK_URL"}, "on": ["failed"]})
        _failed_run(tables[1])
        notifier = _notifier(stack, tables)

        # When the failure is reported, then reported again (a retried planner, a repeated finalize)
        notifier.run_finished("users", RUN)
        notifier.run_finished("users", RUN)

    # Then exactly one message arrived, naming the sync, the run and the error
    [posted] = webhook.received
    assert posted.path == "/services/T0/B0/token" and posted.headers["content-type"] == "application/json"
    text = posted.json()["text"]
    assert text.startswith(f"segsync: sync 'users' run {RUN} failed\n")
    assert "Table with name nope does not exist" in text
    assert "see more: segsync runs segsync.yml --sync users" in text


def test_a_slow_webhook_never_holds_the_run_longer_than_its_timeout(stack, tables, monkeypatch, logs):
    # Given a webhook that answers after 3 s, and a 0.3 s notification timeout
    with serve(slack_ok, delay_s=3.0) as webhook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook.url + "/hook")
        _configure(tables, {"webhook": {"env": "SLACK_WEBHOOK_URL"}, "on": ["failed"]})
        _failed_run(tables[1])
        notifier = _notifier(stack, tables, timeout_s=0.3)

        # When the failure is reported
        started = time.monotonic()
        notifier.run_finished("users", RUN)
        took = time.monotonic() - started

    # Then the notifier gave up on its timeout, before the webhook answered, and said so without raising
    assert len(webhook.received) == 1
    assert took < 3.0
    assert "notification not sent" in logs.getvalue() and "ReadTimeout" in logs.getvalue()


def test_the_webhook_url_is_never_logged(stack, tables, monkeypatch, logs):
    # Given a webhook URL whose path is its secret, where nothing listens
    with serve(slack_ok) as closed:
        url = closed.url
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url + "/services/T0/B0/SECRETPATH")
    _configure(tables, {"webhook": {"env": "SLACK_WEBHOOK_URL"}, "on": ["failed"]})
    _failed_run(tables[1])

    # When the failure cannot be posted
    _notifier(stack, tables).run_finished("users", RUN)

    # Then the log says it was not sent, naming the variable, and holds nothing of the URL
    text = logs.getvalue()
    assert "notification not sent" in text and "SLACK_WEBHOOK_URL" in text and "ConnectionError" in text
    assert "SECRETPATH" not in text and url not in text


def test_a_webhook_url_in_secrets_manager_is_read_from_there(stack, tables):
    with serve(slack_ok) as webhook:
        boto3.client("secretsmanager").create_secret(Name="segsync/notify/slack", SecretString=webhook.url + "/x")
        _configure(tables, {"webhook": {"secret": "segsync/notify/slack"}, "on": ["failed"]})
        _failed_run(tables[1])
        _notifier(stack, tables).run_finished("users", RUN)
    assert [r.path for r in webhook.received] == ["/x"]


def test_a_webhook_answering_an_error_is_logged_as_not_sent(stack, tables, monkeypatch, logs):
    with serve(lambda path, headers, body: (404, b"no_service")) as webhook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook.url + "/gone")
        _configure(tables, {"webhook": {"env": "SLACK_WEBHOOK_URL"}, "on": ["failed"]})
        _failed_run(tables[1])
        _notifier(stack, tables).run_finished("users", RUN)
    assert "the webhook answered HTTP 404" in logs.getvalue()


def _subscribed_queue(topic_arn: str) -> str:
    """An SQS queue subscribed to the topic (raw delivery), to read what SNS published."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="notified")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "false"}
    )
    return url


def _published(queue_url: str) -> list[dict]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [orjson.loads(m["Body"]) for m in messages]


def test_sns_and_email_notifications_publish_to_the_stacks_own_topic(stack, tables):
    # Given the stack's topic with a subscriber, a topic notification and an email notification
    topic = boto3.client("sns").create_topic(Name=TOPIC)["TopicArn"]
    queue = _subscribed_queue(topic)
    _configure(
        tables,
        {"sns": topic, "on": ["failed"]},
        {"email": "data-team@example.com", "on": ["failed"]},
    )
    _failed_run(tables[1])

    # When the failure is reported
    _notifier(stack, tables, topics=Topics(own=topic)).run_finished("users", RUN)

    # Then both were published there, the email one carrying the address its subscription filters on
    published = sorted(_published(queue), key=lambda m: "segsync_email" in m["MessageAttributes"])
    assert len(published) == 2
    assert all(m["Subject"] == f"segsync: sync 'users' run {RUN} failed" for m in published)
    assert published[0]["MessageAttributes"]["event"]["Value"] == "failed"
    assert published[1]["MessageAttributes"]["segsync_email"]["Value"] == "data-team@example.com"


def test_a_topic_the_deployment_does_not_allow_is_never_published_to(stack, tables, logs):
    # Given an item naming some other topic (a topic ARN in an item is input, not authority)
    foreign = boto3.client("sns").create_topic(Name="someone-elses")["TopicArn"]
    own = boto3.client("sns").create_topic(Name=TOPIC)["TopicArn"]
    queue = _subscribed_queue(foreign)
    _configure(tables, {"sns": foreign, "on": ["failed"]})
    _failed_run(tables[1])

    # When the failure is reported
    _notifier(stack, tables, topics=Topics(own=own)).run_finished("users", RUN)

    # Then nothing reached that topic, and the log says why
    assert _published(queue) == []
    assert f"SNS topic {foreign} is not one this deployment may publish to" in logs.getvalue()


def test_a_sync_without_a_committed_run_for_longer_than_allowed_is_reported_stale_once(stack, tables, monkeypatch):
    clock = Clock()
    with serve(slack_ok) as webhook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", webhook.url + "/hook")
        _configure(tables, {"webhook": {"env": "SLACK_WEBHOOK_URL"}, "on": ["stale"], "stale": {"hours": 2}})
        notifier = lambda: _notifier(stack, tables, clock=clock)  # noqa: E731 (one per planner invocation)

        # Given segsync starts watching the sync at a tick, and the sync never commits
        notifier().check_stale(["users"])
        clock.now += 2 * 3600 - 1
        notifier().check_stale(["users"])
        assert webhook.received == []

        # When ticks come after 2 hours without a committed run
        clock.now += 2
        notifier().check_stale(["users"])
        notifier().check_stale(["users"])

        # Then one message says so
        [stale] = webhook.received
        assert stale.json()["text"].startswith("segsync: sync 'users' is stale: no committed run in 2 hours (none")

        # When a run commits, then 2 more hours pass without another
        runs = tables[1]
        assert runs.begin("users", OTHER_RUN, 600, trigger="schedule") is None
        runs.update_run("users", OTHER_RUN, status="committed", committed=1, finished_at=clock.now)
        notifier().run_finished("users", OTHER_RUN)
        clock.now += 2 * 3600 + 1
        notifier().check_stale(["users"])
        notifier().check_stale(["users"])

    # Then it is stale again, once, naming the last committed run
    assert len(webhook.received) == 2
    assert f"(the last was run {OTHER_RUN})" in webhook.received[1].json()["text"]


def test_a_broken_notifications_item_is_logged_and_the_run_goes_on(stack, tables, logs):
    # Given someone edited the notifications item into an invalid shape in the console
    _configure(tables, {"email": "ok@example.com", "on": ["failed"]})
    boto3.resource("dynamodb").Table(os.environ["SYNCS_TABLE"]).update_item(
        Key={"kind": "project", "name": "notifications"},
        UpdateExpression="SET notifications = :n",
        ExpressionAttributeValues={":n": [{"email": "ok@example.com", "on": ["oops"]}]},
    )
    _failed_run(tables[1])

    # When a run's outcome is reported, nothing is raised, and the log names the field
    _notifier(stack, tables).run_finished("users", RUN)
    assert "notification #1 field 'on.0'" in logs.getvalue()


def test_notification_destinations_can_be_named_without_their_secret():
    n = Notification.model_validate({"webhook": {"secret": "segsync/notify/slack"}, "on": ["failed"]})
    assert n.destination == "webhook (secret segsync/notify/slack)"

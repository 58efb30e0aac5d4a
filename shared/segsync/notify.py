"""Notifications: tell people when a run fails, is abandoned, rejects too many rows, commits, or goes stale.

The planner calls ``Notifier.run_finished`` where a run's outcome becomes known and ``Notifier.check_stale``
at each tick. Each (run, event, destination) is claimed once in the runs table before it is sent, so a
retried finalize or a duplicated tick never repeats a message. Sending has a short timeout, and a
notification that cannot be sent is logged, never raised: it must not hold or fail a run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from botocore.exceptions import BotoCoreError, ClientError

from segsync.config import Notification
from segsync.errors import SegsyncError
from segsync.observability import logger
from segsync.secrets import resolve
from segsync.store import NotificationLog, RunStore, SyncStore
from segsync.summary import SyncSummary, summarize

NOTIFY_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 3.0
REASONS_SHOWN = 3
SUBJECT_CHARS = 100
"""SNS refuses a longer Subject."""
EMAIL_ATTRIBUTE = "segsync_email"
"""The message attribute an email subscription filters on (one topic, one filter policy per address)."""
OUTCOMES = {"committed": "committed", "failed": "failed", "abandoned": "abandoned"}


@dataclass(frozen=True)
class Message:
    """One notification: the first line is its subject, the whole text its body."""

    sync: str
    run_id: str
    event: str
    text: str

    @property
    def subject(self) -> str:
        return self.text.splitlines()[0][:SUBJECT_CHARS]


def events_for(summary: SyncSummary, notification: Notification) -> list[str]:
    """The events a finished run means to one notification (its own threshold decides ``rejected``)."""
    events = [OUTCOMES[summary.status]] if summary.status in OUTCOMES else []
    if summary.status == "committed" and notification.rejected.exceeded(summary.rejected, summary.rows_read):
        events.append("rejected")
    return [event for event in events if notification.wants(event, summary.sync)]


def run_message(event: str, summary: SyncSummary, notification: Notification, project_file: str) -> Message:
    """The text of a run's notification: the sync, the run, the counts, the first reasons, the command to see more."""
    head = f"segsync: sync '{summary.sync}' run {summary.run_id}"
    counts = (
        f"{summary.rows_read:,} rows read, {summary.sent:,} sent, {summary.rejected:,} rejected, "
        f"{summary.committed:,} committed"
    )
    if event == "rejected":
        share = summary.rejected / summary.rows_read if summary.rows_read else 0.0
        limits = [f"{t:.1%}" for t in (notification.rejected.share,) if t is not None]
        limits += [f"{t:,} rows" for t in (notification.rejected.count,) if t is not None]
        first = (
            f"{head} committed with {summary.rejected:,} of {summary.rows_read:,} rows rejected "
            f"({share:.1%}, over {' or '.join(limits)})"
        )
    elif event == "committed":
        first = f"{head} committed"
    else:
        first = f"{head} {event}"
    lines = [first]
    if summary.error and event != "committed":
        lines.append(f"error: {summary.error}")
    lines.append(counts)
    if summary.rejection_reasons:
        reasons = list(summary.rejection_reasons.items())[:REASONS_SHOWN]
        lines.append("first reasons: " + "; ".join(f"{reason} ({count:,})" for reason, count in reasons))
    if event == "rejected":
        lines.append(f"see more: segsync rejected {project_file} --sync {summary.sync} --run {summary.run_id}")
    else:
        lines.append(f"see more: segsync runs {project_file} --sync {summary.sync}")
    return Message(summary.sync, summary.run_id, event, "\n".join(lines))


def stale_message(sync: str, hours: float, last_run: str | None, project_file: str) -> Message:
    since = f"the last was run {last_run}" if last_run else "none since segsync started watching it"
    text = (
        f"segsync: sync '{sync}' is stale: no committed run in {hours:g} hours ({since})\n"
        f"see more: segsync runs {project_file} --sync {sync}"
    )
    return Message(sync, last_run or "", "stale", text)


def destination_id(notification: Notification) -> str:
    """A short, stable name of a notification entry (its config, never a secret's value) for the once-only claim."""
    return hashlib.blake2b(notification.model_dump_json().encode(), digest_size=4).hexdigest()


@dataclass(frozen=True)
class Topics:
    """The SNS topics this deployment may publish to: its own (email goes there) and one more it was given.

    A topic named in a notification item is input, not authority: it is used only if listed here (and
    the planner's role allows only these).
    """

    own: str | None = None
    extra: str | None = None

    def allows(self, arn: str) -> bool:
        return arn in {self.own, self.extra} - {None, ""}


class Notifier:
    """Sends the project's notifications about runs; every failure to notify is logged, none is raised."""

    def __init__(
        self,
        store: SyncStore,
        runs: RunStore,
        log: NotificationLog,
        *,
        project_file: str = "segsync.yml",
        topics: Topics | None = None,
        sns: Callable[[], Any] | None = None,
        timeout_s: float = NOTIFY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runs = runs
        self._log = log
        self._project_file = project_file
        self._topics = topics or Topics()
        self._sns = sns
        self._timeout_s = timeout_s
        self._clock = clock
        self._notifications: list[Notification] | None = None

    def run_finished(self, sync: str, run_id: str) -> None:
        """A run's outcome is known (committed, failed, abandoned): tell whoever asked, once."""
        try:
            configured = self._configured()
            summary = summarize(self._runs, sync, run_id)
            if summary.status == "committed":
                self._log.committed(sync, run_id, self._clock())
            for notification in configured:
                for event in events_for(summary, notification):
                    message = run_message(event, summary, notification, self._project_file)
                    self._send_once(notification, message)
        except (SegsyncError, ClientError, BotoCoreError) as exc:
            logger.error("notifications not sent", extra={"sync": sync, "run_id": run_id, "error": str(exc)})

    def check_stale(self, syncs: list[str]) -> None:
        """At a tick: tell those who asked about syncs without a committed run for longer than they allow."""
        try:
            wanted = [n for n in self._configured() if "stale" in n.on]
            if not wanted:
                return
            now = self._clock()
            for name in syncs:
                if not self._enabled(name):
                    continue
                health = self._log.health(name, now)
                since = health.get("last_committed_at") or health["watch_since"]
                last_run = health.get("last_committed_run")
                for notification in wanted:
                    hours = notification.stale.hours
                    if notification.wants("stale", name) and now - since > hours * 3600:
                        message = stale_message(name, hours, last_run, self._project_file)
                        self._send_once(notification, message, marker=last_run or f"watched-{int(since)}")
        except (SegsyncError, ClientError, BotoCoreError) as exc:
            logger.error("stale check failed", extra={"error": str(exc)})

    def _configured(self) -> list[Notification]:
        if self._notifications is None:
            self._notifications = self._store.notifications()
        return self._notifications

    def _enabled(self, name: str) -> bool:
        try:
            return bool(self._store.sync(name).enabled)
        except SegsyncError:
            return False  # an invalid item fails its own runs, which is what 'failed' notifications are for

    def _send_once(self, notification: Notification, message: Message, marker: str | None = None) -> None:
        claim = (message.sync, marker or message.run_id, message.event, destination_id(notification))
        if not self._log.claim(*claim):
            return
        self.deliver(notification, message)

    def deliver(self, notification: Notification, message: Message) -> bool:
        """Send one message to one destination; False (and a log line) if it could not be sent."""
        where = {"sync": message.sync, "run_id": message.run_id, "event": message.event}
        try:
            if notification.webhook is not None:
                url = resolve(notification.webhook, "notification webhook URL")
                status = post_webhook(url, {"text": message.text}, self._timeout_s)
                if not 200 <= status < 300:
                    raise SegsyncError(f"the webhook answered HTTP {status}")
            else:
                self._publish(notification, message)
        except requests.RequestException as exc:
            # Never the exception's text: it quotes the URL, which is the webhook's secret.
            error = f"{type(exc).__name__} (no answer within {self._timeout_s:g} s or no connection)"
            logger.warning("notification not sent", extra={**where, "to": notification.destination, "error": error})
            return False
        except (SegsyncError, ClientError, BotoCoreError) as exc:
            logger.warning("notification not sent", extra={**where, "to": notification.destination, "error": str(exc)})
            return False
        logger.info("notification sent", extra={**where, "to": notification.destination})
        return True

    def _publish(self, notification: Notification, message: Message) -> None:
        topic = notification.sns or self._topics.own
        if topic is None or not self._topics.allows(topic) or self._sns is None:
            raise SegsyncError(
                f"SNS topic {topic or '(none)'} is not one this deployment may publish to (its notification "
                "topic, or ExtraNotificationTopicArn); local runs post webhooks only"
            )
        attributes = {
            "sync": {"DataType": "String", "StringValue": message.sync},
            "event": {"DataType": "String", "StringValue": message.event},
        }
        if notification.email is not None:
            attributes[EMAIL_ATTRIBUTE] = {"DataType": "String", "StringValue": notification.email}
        self._sns().publish(TopicArn=topic, Subject=message.subject, Message=message.text, MessageAttributes=attributes)


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float) -> int:
    """POST a Slack-compatible payload; returns the status without reading the body.

    Bounded by the connect timeout plus ``timeout_s`` for the answer: a slow webhook costs a run that
    much at most. No redirects (a webhook that moved is a configuration to fix, not to follow).
    """
    if not url.startswith(("https://", "http://")):
        raise SegsyncError("the notification webhook URL is not an http(s) URL")
    with requests.post(
        url,
        data=orjson.dumps(payload),
        headers={"Content-Type": "application/json"},
        timeout=(min(CONNECT_TIMEOUT_S, timeout_s), timeout_s),
        allow_redirects=False,
        stream=True,
    ) as response:
        return response.status_code

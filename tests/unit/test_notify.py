"""What a notification says and when: events from a run's outcome, message text, which topics are allowed."""

from __future__ import annotations

from segsync.config import Notification
from segsync.notify import Topics, destination_id, events_for, run_message, stale_message
from segsync.summary import SyncSummary

RUN = "20261201T101010Z-a1b2c3"


def _summary(status: str, rows: int = 300, rejected: int = 0, error: str | None = None, **reasons: int) -> SyncSummary:
    return SyncSummary(
        sync="users",
        run_id=RUN,
        status=status,
        rows_read=rows,
        new=rows,
        changed=0,
        unchanged=0,
        sent=rows - rejected,
        batches=1,
        rejected=rejected,
        committed=rows - rejected if status == "committed" else 0,
        seconds=1.0,
        error=error,
        rejection_reasons={reason.replace("_", " "): count for reason, count in reasons.items()},
    )


def _notification(**fields) -> Notification:
    return Notification.model_validate({"webhook": {"env": "SLACK_WEBHOOK_URL"}, **fields})


def test_each_outcome_is_its_event_and_a_committed_run_over_the_threshold_is_also_rejected():
    everything = _notification(on=["failed", "abandoned", "rejected", "committed"], rejected={"share": 0.05})
    assert events_for(_summary("failed"), everything) == ["failed"]
    assert events_for(_summary("abandoned"), everything) == ["abandoned"]
    assert events_for(_summary("committed", rejected=15), everything) == ["committed"]  # 5%: not over
    assert events_for(_summary("committed", rejected=16), everything) == ["committed", "rejected"]
    assert events_for(_summary("sending"), everything) == []


def test_a_notification_hears_only_the_events_and_syncs_it_asked_for():
    failures = _notification(on=["failed", "rejected"], rejected={"count": 10}, syncs=["users"])
    assert events_for(_summary("committed", rejected=11), failures) == ["rejected"]
    assert events_for(_summary("committed"), failures) == []
    others = _notification(on=["failed"], syncs=["orders"])
    assert events_for(_summary("failed"), others) == []


def test_a_failed_run_names_the_sync_the_run_the_error_and_the_command_to_see_more():
    summary = _summary("failed", rows=0, error="sync 'users': model query failed: Table with name nope does not exist")
    message = run_message("failed", summary, _notification(on=["failed"]), "demo/segsync.yml")
    assert message.text == (
        f"segsync: sync 'users' run {RUN} failed\n"
        "error: sync 'users': model query failed: Table with name nope does not exist\n"
        "0 rows read, 0 sent, 0 rejected, 0 committed\n"
        "see more: segsync runs demo/segsync.yml --sync users"
    )
    assert message.subject == f"segsync: sync 'users' run {RUN} failed"


def test_a_rejected_message_gives_the_share_the_threshold_and_the_first_reasons():
    summary = _summary("committed", rows=310, rejected=20, key_duplicate_key=18, traits_email_not_text=2, c=1, d=1)
    message = run_message("rejected", summary, _notification(on=["rejected"], rejected={"share": 0.05}), "p.yml")
    assert message.text.splitlines() == [
        f"segsync: sync 'users' run {RUN} committed with 20 of 310 rows rejected (6.5%, over 5.0%)",
        "310 rows read, 290 sent, 20 rejected, 290 committed",
        "first reasons: key duplicate key (18); traits email not text (2); c (1)",
        f"see more: segsync rejected p.yml --sync users --run {RUN}",
    ]


def test_a_stale_message_says_how_long_and_the_last_committed_run():
    message = stale_message("users", 24, RUN, "segsync.yml")
    assert message.text == (
        f"segsync: sync 'users' is stale: no committed run in 24 hours (the last was run {RUN})\n"
        "see more: segsync runs segsync.yml --sync users"
    )
    assert "none since segsync started watching it" in stale_message("users", 1.5, None, "s.yml").text


def test_only_the_deployments_own_topics_are_allowed_whatever_an_item_names():
    topics = Topics(own="arn:aws:sns:us-east-1:123456789012:segsync-notify", extra=None)
    assert topics.allows("arn:aws:sns:us-east-1:123456789012:segsync-notify")
    assert not topics.allows("arn:aws:sns:us-east-1:999999999999:someone-elses")
    assert not Topics().allows("arn:aws:sns:us-east-1:123456789012:segsync-notify")


def test_a_destination_id_is_stable_and_differs_between_entries():
    a, b = _notification(on=["failed"]), _notification(on=["failed", "stale"])
    assert destination_id(a) == destination_id(_notification(on=["failed"]))
    assert destination_id(a) != destination_id(b)

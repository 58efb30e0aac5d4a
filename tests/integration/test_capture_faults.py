"""The capture endpoint's faults for rehearsals: lost acknowledgements, one-chunk outages, late answers."""

from __future__ import annotations

import orjson
import pytest
import requests

from segsync.local.capture import CaptureServer, FaultPlan, read_captured

AUTH = ("wk_faults", "")


def post(server: CaptureServer, *messages: dict, timeout: float = 5) -> requests.Response:
    body = orjson.dumps({"batch": list(messages), "sentAt": "2026-11-29T01:02:03.456+00:00"})
    return requests.post(server.url + "/v1/batch", data=body, auth=AUTH, timeout=timeout)


def test_reset_after_records_the_batch_then_drops_the_connection(tmp_path):
    # Given a plan that loses the first acknowledgement
    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan.parse("seq=reset_after")) as capture:
        # When the same message is posted, then posted again since no answer came
        with pytest.raises(requests.ConnectionError):
            post(capture, {"type": "identify", "userId": "u", "messageId": "m1"})
        again = post(capture, {"type": "identify", "userId": "u", "messageId": "m1"})

    # Then both copies were recorded: one distinct message, one duplicate on the wire
    assert again.status_code == 200
    assert [m["messageId"] for m in read_captured(capture.out_path)] == ["m1", "m1"]
    assert (capture.messages, capture.distinct, capture.duplicates) == (2, 1, 1)
    assert capture.faults_injected == {"reset_after": 1} and capture.statuses == {200: 1}


def test_fail_if_fails_only_the_batches_it_matches_until_it_is_lifted(tmp_path):
    # Given an outage for batches holding user "down", answered 503 with Retry-After
    faults = FaultPlan(fail_if=lambda m: m.get("userId") == "down", error_status=503, retry_after=2)
    with CaptureServer(tmp_path / "c.ndjson", faults=faults) as capture:
        # When a batch with it and one without arrive, then the outage ends and the first is resent
        failed = post(capture, {"type": "identify", "userId": "down"}, {"type": "identify", "userId": "up"})
        other = post(capture, {"type": "identify", "userId": "up"})
        faults.fail_if = None
        resent = post(capture, {"type": "identify", "userId": "down"}, {"type": "identify", "userId": "up"})

    # Then only the matching batch failed, with Retry-After, and nothing of it was recorded then
    assert (failed.status_code, failed.headers["Retry-After"]) == (503, "2")
    assert (other.status_code, resent.status_code) == (200, 200)
    assert [m["userId"] for m in read_captured(capture.out_path)] == ["up", "down", "up"]
    assert capture.faults_injected == {"fail_if": 1}


def test_a_slow_answer_is_recorded_late_and_wait_idle_waits_for_it(tmp_path):
    # Given an answer that takes 0.6 s, and a client that waits 0.1 s
    with CaptureServer(tmp_path / "c.ndjson", faults=FaultPlan.parse("seq=slow;slow=0.6")) as capture:
        with pytest.raises(requests.Timeout):
            post(capture, {"type": "identify", "userId": "u", "messageId": "m1"}, timeout=0.1)

        # When the test waits for the endpoint to be idle
        idle = capture.wait_idle(timeout=5)

        # Then the slow request was recorded by then (the client never heard so)
        assert idle and capture.messages == 1
    assert capture.faults_injected == {"slow": 1}


def test_the_new_fault_words_parse_and_unknown_ones_are_refused():
    assert FaultPlan.parse("seq=reset_after,slow,ok,503").sequence == ["reset_after", "slow", "ok", 503]
    with pytest.raises(ValueError, match="reset_after"):
        FaultPlan.parse("seq=reset_before")
